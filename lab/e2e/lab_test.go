//go:build e2e

// Package e2e holds the lab's end-to-end tests. They run against the
// single-node cluster that `make lab-up` starts (kubeconfig in
// LAB_KUBECONFIG, kubectl in LAB_KUBECTL, repository root in LAB_REPO; all
// set by `make e2e`) and send traffic only to the lab's own addresses.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// lab is the handle every test uses to reach the cluster.
type lab struct {
	kubeconfig string
	kubectlBin string
	repo       string
	client     kubernetes.Interface
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{
		kubeconfig: envOr("LAB_KUBECONFIG", "/var/lib/shoal-lab/admin.kubeconfig"),
		kubectlBin: os.Getenv("LAB_KUBECTL"),
		repo:       os.Getenv("LAB_REPO"),
	}
	if l.kubectlBin == "" {
		p, err := exec.LookPath("kubectl")
		if err != nil {
			t.Fatalf("e2e: LAB_KUBECTL unset and no kubectl on PATH: run through `make e2e`")
		}
		l.kubectlBin = p
	}
	if l.repo == "" {
		abs, err := filepath.Abs("../..")
		if err != nil {
			t.Fatalf("e2e: repository root: %v", err)
		}
		l.repo = abs
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.kubeconfig)
	if err != nil {
		t.Fatalf("e2e: load kubeconfig %s (is the lab up? `make lab-up`): %v", l.kubeconfig, err)
	}
	l.client, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("e2e: client: %v", err)
	}
	return l
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// kubectl runs kubectl against the lab and returns its standard output.
func (l *lab) kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, l.kubectlBin, append([]string{"--kubeconfig", l.kubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// namespace creates a fresh namespace that is deleted when the test ends.
func (l *lab) namespace(t *testing.T, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := l.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("e2e: create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
			t.Logf("e2e: delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// waitNamespaceGone waits until the namespace ns no longer exists, so that
// what comes next on the shared lab (a test applying into the same name, the
// next experiment) does not meet its terminating objects.
func (l *lab) waitNamespaceGone(ctx context.Context, ns string) error {
	return poll(ctx, time.Second, func(ctx context.Context) (bool, error) {
		_, err := l.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// poll calls cond every interval until it reports done, returns an error or
// the context ends; the last error or state is in the failure message.
func poll(ctx context.Context, interval time.Duration, cond func(context.Context) (bool, error)) error {
	var last error
	for {
		done, err := cond(ctx)
		if err != nil {
			last = err
		} else if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
