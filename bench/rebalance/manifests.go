package main

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/yaml"
)

// thumbnailerImage is the image of the Deployment, as in the deploy kit.
const thumbnailerImage = "ko://github.com/shoal-dev/shoal/cmd/thumbnailer"

// metricName is the HPA's Pods metric, served by the adapter rule below from
// the thumbnailer's http_requests_total.
const metricName = "http_requests_per_second"

// spec is what the generated manifests say.
type spec struct {
	MinReplicas, MaxReplicas int32
	// Target is the HPA's AverageValue of requests per second per pod.
	Target float64
	// MaxConnAge is the thumbnailer's MAX_CONN_AGE; negative turns
	// keep-alive rebalancing off (maxConnAgeOff), zero leaves it unset,
	// which means the service's default (1m).
	MaxConnAge time.Duration
	// RateWindow is the range of rate() in the adapter rule.
	RateWindow time.Duration
}

// manifestTemplate is a Deployment, a ClusterIP Service and an HPA on the
// per-pod request rate. Probes are fast and the termination short so that a
// run spends its time under load, not waiting; the HPA scales up without
// stabilization (the deploy kit's policies) and down only after 5 minutes,
// so no scale-down falls inside a run.
var manifestTemplate = template.Must(template.New("manifests").Parse(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: thumbnailer
  labels:
    app.kubernetes.io/name: thumbnailer
spec:
  # No replicas: the HPA owns the count and raises it to minReplicas.
  selector:
    matchLabels:
      app.kubernetes.io/name: thumbnailer
  template:
    metadata:
      labels:
        app.kubernetes.io/name: thumbnailer
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: thumbnailer
          image: {{.Image}}
          ports:
            - name: http
              containerPort: 8080
            - name: admin
              containerPort: 9090
          env:
            - name: PORT
              value: "8080"
            - name: ADMIN_PORT
              value: "9090"
            - name: DRAIN_DELAY
              value: 1s
            - name: SHUTDOWN_TIMEOUT
              value: 5s
            - name: LOG_LEVEL
              value: warn
            - name: CACHE_BYTES
              value: "-1"
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
{{- if .MaxConnAge}}
            - name: MAX_CONN_AGE
              value: {{.MaxConnAge}}
{{- end}}
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              cpu: "1"
              memory: 256Mi
          startupProbe:
            httpGet:
              path: /startupz
              port: admin
            periodSeconds: 1
            timeoutSeconds: 2
            failureThreshold: 30
          readinessProbe:
            httpGet:
              path: /readyz
              port: admin
            periodSeconds: 1
            timeoutSeconds: 2
            failureThreshold: 2
          lifecycle:
            preStop:
              sleep:
                seconds: 1 # = DRAIN_DELAY
---
apiVersion: v1
kind: Service
metadata:
  name: thumbnailer
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: thumbnailer
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: thumbnailer
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: thumbnailer
  minReplicas: {{.MinReplicas}}
  maxReplicas: {{.MaxReplicas}}
  metrics:
    - type: Pods
      pods:
        metric:
          name: {{.Metric}}
        target:
          type: AverageValue
          averageValue: "{{.Target}}"
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      selectPolicy: Max
      policies:
        - type: Percent
          value: 100
          periodSeconds: 15
        - type: Pods
          value: 4
          periodSeconds: 15
    scaleDown:
      stabilizationWindowSeconds: 300
`))

// rulesTemplate is the prometheus-adapter rule of the deploy kit with a
// shorter rate() range, so the metric follows a step within seconds rather
// than a minute (shoal up scrapes every 2s, so the range holds 5 scrapes).
var rulesTemplate = template.Must(template.New("rules").Parse(`rules:
  - seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
    name:
      matches: ^(.*)_total$
      as: ${1}_per_second
    metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[{{.Window}}])) by (<<.GroupBy>>)
`))

// manifests renders the manifests of s.
func manifests(s spec) ([]byte, error) {
	var b bytes.Buffer
	err := manifestTemplate.Execute(&b, map[string]any{
		"MinReplicas": s.MinReplicas,
		"MaxReplicas": s.MaxReplicas,
		"Target":      quantity(s.Target),
		"MaxConnAge":  durationOrEmpty(s.MaxConnAge),
		"Image":       thumbnailerImage,
		"Metric":      metricName,
	})
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	return b.Bytes(), nil
}

// adapterRules renders the adapter rules of s.
func adapterRules(s spec) ([]byte, error) {
	var b bytes.Buffer
	if err := rulesTemplate.Execute(&b, map[string]any{"Window": promDuration(s.RateWindow)}); err != nil {
		return nil, fmt.Errorf("adapter rules: %w", err)
	}
	return b.Bytes(), nil
}

// hpaOf decodes the HorizontalPodAutoscaler of rendered manifests, so the
// prediction uses exactly the object `shoal up` runs.
func hpaOf(manifests []byte) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	for doc := range strings.SplitSeq(string(manifests), "\n---\n") {
		if !strings.Contains(doc, "kind: HorizontalPodAutoscaler") {
			continue
		}
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := yaml.UnmarshalStrict([]byte(doc), &h); err != nil {
			return nil, fmt.Errorf("manifests: HorizontalPodAutoscaler: %w", err)
		}
		return &h, nil
	}
	return nil, fmt.Errorf("manifests: no HorizontalPodAutoscaler")
}

func quantity(v float64) string { return fmt.Sprintf("%g", v) }

func durationOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// maxConnAgeOff is the MAX_CONN_AGE of the run without keep-alive
// rebalancing: negative means never.
const maxConnAgeOff = -time.Second

// promDuration writes d in Prometheus' duration syntax (whole seconds).
func promDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", int64(d/time.Second))
}
