package k8sresolver_test

import (
	"fmt"
	"log/slog"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/balancer/k8sresolver"
)

// Balancing over a Service's EndpointSlices. In a pod the client comes
// from rest.InClusterConfig and kubernetes.NewForConfig.
func Example() {
	client := fake.NewClientset()
	resolver, err := k8sresolver.New(k8sresolver.Config{
		Client:    client,
		Namespace: "default",
		Service:   "thumbnailer",
		PortName:  "http",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	lb, err := balancer.New(balancer.Config{Resolver: resolver, Policy: balancer.PeakEWMA{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lb.Close()
	fmt.Println(lb.Policy())
	// Output: peak_ewma
}

// Which endpoints kube-proxy, and this resolver, send traffic to.
func ExampleEligible() {
	port, name := int32(8080), "http"
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "thumbnailer-x1"},
		Ports:      []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}},
			{Addresses: []string{"10.244.0.8"}, Conditions: discoveryv1.EndpointConditions{
				Ready: new(false), Serving: new(true), Terminating: new(true)}},
		},
	}
	fmt.Println(k8sresolver.Eligible([]*discoveryv1.EndpointSlice{s}, "http", nil))
	// Output: [10.244.0.7:8080]
}
