package lint

import (
	"fmt"
	"strings"
	"testing"
)

// drainManifest is a Deployment whose container has the given preStop
// (YAML of lifecycle.preStop, "" for none) and DRAIN_DELAY ("" for none),
// followed by the given Services.
func drainManifest(preStop, drain string, services ...string) string {
	var env, life string
	if drain != "" {
		env = fmt.Sprintf("\n          env:\n            - {name: DRAIN_DELAY, value: %s}", drain)
	}
	if preStop != "" {
		life = "\n          lifecycle:\n            preStop: " + preStop
	}
	m := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 120
      containers:
        - name: web
          image: example.com/web:1
          ports:
            - {name: http, containerPort: 8080}
            - {name: admin, containerPort: 9090}` + env + life + "\n"
	for _, s := range services {
		m += "---\n" + s
	}
	return m
}

// Services selecting app: web.
const (
	clusterIPSvc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n"
	headlessSvc  = "apiVersion: v1\nkind: Service\nmetadata: {name: web-headless}\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports: [{name: http, port: 8080, targetPort: http}]\n"
	nodePortSvc  = "apiVersion: v1\nkind: Service\nmetadata: {name: web-np}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n"
	metricsSvc   = "apiVersion: v1\nkind: Service\nmetadata: {name: web-metrics}\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports: [{name: admin, port: 9090, targetPort: admin}]\n"
	otherNSSvc   = "apiVersion: v1\nkind: Service\nmetadata: {name: web-headless, namespace: other}\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports: [{name: http, port: 8080, targetPort: http}]\n"
)

// TestDrainBudget checks SH004 against the drain budgets: preStop +
// DRAIN_DELAY must cover the budget of the kind of Service that selects
// the pod, the headless one included.
func TestDrainBudget(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		want     string // a part of the one SH004 message; "" for none
	}{
		{"no hook, no Service", drainManifest("", "5s"), "serves ports but has no preStop hook"},
		{"no hook, ClusterIP, DRAIN_DELAY covers it", drainManifest("", "5s", clusterIPSvc), ""},
		{"no hook, ClusterIP, no DRAIN_DELAY", drainManifest("", "", clusterIPSvc),
			`no preStop hook, and DRAIN_DELAY 0s is below the 4s drain budget of the ClusterIP Service "web"`},
		{"sleep 5 + 5 behind a ClusterIP", drainManifest("{sleep: {seconds: 5}}", "5s", clusterIPSvc), ""},
		{"sleep 2 + 2 behind a ClusterIP: the budget exactly", drainManifest("{sleep: {seconds: 2}}", "2s", clusterIPSvc), ""},
		{"sleep 1 + 2 behind a ClusterIP: a second short", drainManifest("{sleep: {seconds: 1}}", "2s", clusterIPSvc),
			`preStop 1s + DRAIN_DELAY 2s = 3s is below the 4s drain budget of the ClusterIP Service "web"`},
		{"sleep 1 + 0 behind a NodePort", drainManifest("{sleep: {seconds: 1}}", "", nodePortSvc),
			`preStop 1s + DRAIN_DELAY 0s = 1s is below the 4s drain budget of the ClusterIP Service "web-np"`},
		{"sleep 5 + 5 behind a headless Service", drainManifest("{sleep: {seconds: 5}}", "5s", headlessSvc),
			`preStop 5s + DRAIN_DELAY 5s = 10s is below the 35s drain budget of the headless Service "web-headless"`},
		{"sleep 20 + 20 behind a headless Service", drainManifest("{sleep: {seconds: 20}}", "20s", headlessSvc), ""},
		{"both kinds: the headless budget binds", drainManifest("{sleep: {seconds: 5}}", "5s", clusterIPSvc, headlessSvc),
			`below the 35s drain budget of the headless Service "web-headless"`},
		{"exec sleep 30 + 5 behind a headless Service", drainManifest(`{exec: {command: [sh, -c, "sleep 30"]}}`, "5s", headlessSvc), ""},
		{"exec sleep 29 + 5 behind a headless Service", drainManifest(`{exec: {command: [/bin/sleep, "29"]}}`, "5s", headlessSvc),
			"preStop 29s + DRAIN_DELAY 5s = 34s is below the 35s"},
		{"a hook of unknown length is trusted", drainManifest(`{httpGet: {path: /drain, port: admin}}`, "", headlessSvc), ""},
		{"a headless metrics Service sets no budget", drainManifest("{sleep: {seconds: 5}}", "", clusterIPSvc, metricsSvc), ""},
		{"Recreate: a hook is enough", strings.Replace(drainManifest("{sleep: {seconds: 2}}", "", clusterIPSvc), "spec:\n  selector:", "spec:\n  strategy: {type: Recreate}\n  selector:", 1), ""},
		{"Recreate still wants a hook", strings.Replace(drainManifest("", "", clusterIPSvc), "spec:\n  selector:", "spec:\n  strategy: {type: Recreate}\n  selector:", 1), "serves ports but has no preStop hook"},
		{"a Service of another namespace does not select", drainManifest("{sleep: {seconds: 1}}", "", otherNSSvc), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := (&Linter{}).LintBytes("web.yaml", []byte(tc.manifest))
			var got []string
			for _, f := range rep.Findings {
				if f.Rule == IDNoPreStop {
					got = append(got, f.Message)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("want no SH004 finding, got %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("want one SH004 finding containing %q, got %q", tc.want, got)
			}
		})
	}
}
