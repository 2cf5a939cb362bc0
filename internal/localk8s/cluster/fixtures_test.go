package cluster

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testImage is the image the tests' Binary maps to the testpod program.
const testImage = "shoal.test/testpod:v1"

// podPort is the port every testpod container serves on its own pod IP.
const podPort = 8080

// newTestDeployment returns a Deployment of testpod containers labelled
// app=NAME, serving on the container port "http" with a readiness probe
// on /readyz every second.
func newTestDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	lbls := map[string]string{"app": name}
	grace := int64(10)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name:  "app",
						Image: testImage,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: podPort}},
						Env: []corev1.EnvVar{
							{Name: "PORT", Value: "8080"},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/readyz", Port: intstr.FromString("http"),
							}},
							PeriodSeconds:    1,
							TimeoutSeconds:   5,
							FailureThreshold: 2,
						},
					}},
				},
			},
		},
	}
}

// newTestService returns a Service selecting app=APP: a ClusterIP Service
// on port 80 to the container port "http", or a headless one when
// headless is set.
func newTestService(ns, name, app string, headless bool) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if headless {
		s.Spec.ClusterIP = "None"
	}
	return s
}

// newTestIngress returns an Ingress sending every path to port 80 of
// Service svc.
func newTestIngress(ns, name, svc string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80},
					}},
				}},
			}},
		}}},
	}
}
