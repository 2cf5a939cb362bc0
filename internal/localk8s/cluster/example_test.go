package cluster_test

import (
	"fmt"
	"net/netip"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
)

// Objects.Validate reports every problem at once, each naming the object
// and the field.
func ExampleObjects_Validate() {
	var objs cluster.Objects
	for _, obj := range []any{
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
				},
			},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
				Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5353),
			}}},
		},
	} {
		if err := objs.Add(obj); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(objs.Validate())
	// Output:
	// cluster: invalid object: Deployment default/web: container "app" has no image (lint SH016 invalid-spec)
	// cluster: invalid object: Service shop/web: spec.ports[0].protocol UDP: only TCP is supported
}

// New decides the Services' addresses before anything runs: ClusterIPs
// come from the ServiceNet after the block kept for the DNS server.
func ExampleNew() {
	replicas := int32(2)
	labels := map[string]string{"app": "web"}
	objs := &cluster.Objects{}
	_ = objs.Add(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "ghcr.io/shoal-dev/thumbnailer:latest",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	})
	_ = objs.Add(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	})
	dir, err := os.MkdirTemp("", "cluster-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	c, err := cluster.New(cluster.Config{
		Objects:    objs,
		Binary:     func(image string) (string, error) { return "/bin/false", nil },
		RunDir:     dir,
		ServiceNet: netip.MustParsePrefix("127.0.42.0/24"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := c.Snapshot()
	for _, svc := range s.Services {
		fmt.Println(svc.Namespace, svc.Name, svc.Type, svc.ClusterIP, svc.Ports)
	}
	fmt.Println("dns", c.DNSAddr())
	fmt.Println("deployment", s.Deployments[0].Name, "replicas", s.Deployments[0].Replicas)
	// Output:
	// default web ClusterIP 127.0.42.11 [80->http/TCP]
	// dns 127.0.42.10:53
	// deployment web replicas 2
}
