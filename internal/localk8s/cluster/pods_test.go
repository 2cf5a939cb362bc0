package cluster

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestTargetPort(t *testing.T) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{
		{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
		{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9090}}},
	}}
	tests := []struct {
		name   string
		port   corev1.ServicePort
		want   uint16
		wantOK bool
	}{
		{name: "unset is the service port", port: corev1.ServicePort{Port: 80}, want: 80, wantOK: true},
		{name: "number", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(8081)}, want: 8081, wantOK: true},
		{name: "name in the first container", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}, want: 8080, wantOK: true},
		{name: "name in a second container", port: corev1.ServicePort{Port: 9000, TargetPort: intstr.FromString("admin")}, want: 9090, wantOK: true},
		{name: "numeric string", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("8082")}, want: 8082, wantOK: true},
		{name: "unknown name", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("grpc")}},
		{name: "numeric string out of range", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("70000")}},
		{name: "number out of range", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(70000)}},
		{name: "negative number", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := targetPort(spec, tt.port)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("targetPort = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestMetricsURL(t *testing.T) {
	ports := func(ps ...corev1.ContainerPort) *corev1.PodSpec {
		return &corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: ps}}}
	}
	httpPort := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	tests := []struct {
		name        string
		annotations map[string]string
		spec        *corev1.PodSpec
		want        string
	}{
		{name: "no metrics port", spec: ports(httpPort), want: ""},
		{name: "port named admin", spec: ports(httpPort, corev1.ContainerPort{Name: "admin", ContainerPort: 9090}), want: "http://127.0.41.7:9090/metrics"},
		{name: "port named metrics", spec: ports(corev1.ContainerPort{Name: "metrics", ContainerPort: 9102}), want: "http://127.0.41.7:9102/metrics"},
		{
			name:        "annotations win over named ports",
			annotations: map[string]string{"prometheus.io/port": "9300", "prometheus.io/path": "/stats/prometheus"},
			spec:        ports(corev1.ContainerPort{Name: "metrics", ContainerPort: 9102}),
			want:        "http://127.0.41.7:9300/stats/prometheus",
		},
		{
			name:        "path annotation with a named port",
			annotations: map[string]string{"prometheus.io/path": "/m"},
			spec:        ports(corev1.ContainerPort{Name: "admin", ContainerPort: 9090}),
			want:        "http://127.0.41.7:9090/m",
		},
		{
			name:        "port annotation not a number falls back to named ports",
			annotations: map[string]string{"prometheus.io/port": "admin"},
			spec:        ports(corev1.ContainerPort{Name: "admin", ContainerPort: 9090}),
			want:        "http://127.0.41.7:9090/metrics",
		},
		{
			name:        "port annotation out of range is ignored",
			annotations: map[string]string{"prometheus.io/port": "70000"},
			spec:        ports(httpPort),
			want:        "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pod{ip: netip.MustParseAddr("127.0.41.7"), spec: tt.spec, annotations: tt.annotations}
			if got := metricsURL(p); got != tt.want {
				t.Errorf("metricsURL = %q, want %q", got, tt.want)
			}
		})
	}
}
