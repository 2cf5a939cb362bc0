package kubelet_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/internal/localk8s/kubelet"
)

// A pod whose one container runs to completion: the image resolves to
// /bin/sh, and the manifest's args are passed to it.
func Example() {
	pod, err := kubelet.Start(kubelet.Config{
		Name: "hello", Namespace: "default",
		IP: netip.MustParseAddr("127.0.1.250"),
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "hello", Image: "busybox",
				Args: []string{"-c", "test \"$HOST\" = 127.0.1.250"},
			}},
		},
		Binary: func(image string) (string, error) { return "/bin/sh", nil },
		OnEvent: func(e kubelet.Event) {
			fmt.Println(e.Reason, e.Message)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if pod.Status().Phase != corev1.PodRunning {
			break
		}
	}
	st := pod.Status()
	fmt.Println(st.Phase, st.Reason, st.Containers[0].LastExit)
	_ = pod.Terminate(context.Background())
	// Output:
	// Started Started container hello
	// Succeeded Completed Completed (exit code 0)
}
