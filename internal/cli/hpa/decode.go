package hpa

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/autoscale"
)

// ErrInput is wrapped by every decoding error; the message names the
// field that was wrong.
var ErrInput = errors.New("hpa: bad input")

// configFile is the controller settings as written in a file.
type configFile struct {
	Tolerance                    *float64 `json:"tolerance,omitempty"`
	CPUInitializationPeriod      string   `json:"cpuInitializationPeriod,omitempty"`
	InitialReadinessDelay        string   `json:"initialReadinessDelay,omitempty"`
	DownscaleStabilizationWindow string   `json:"downscaleStabilizationWindow,omitempty"`
	MetricWindow                 string   `json:"metricWindow,omitempty"`
	// FeatureGates are kube-controller-manager's --feature-gates for the
	// HPA controller, such as {HPAScaleToZero: false}.
	FeatureGates map[string]bool `json:"featureGates,omitempty"`
}

type recommendFile struct {
	HPA             *autoscalingv2.HorizontalPodAutoscaler `json:"hpa"`
	Now             string                                 `json:"now"`
	CurrentReplicas int32                                  `json:"currentReplicas"`
	StatusReplicas  *int32                                 `json:"statusReplicas,omitempty"`
	Config          *configFile                            `json:"config,omitempty"`
	Pods            []podFile                              `json:"pods,omitempty"`
	ObjectMetrics   map[string]string                      `json:"objectMetrics,omitempty"`
	ExternalMetrics map[string]string                      `json:"externalMetrics,omitempty"`
	Recommendations *[]recommendationFile                  `json:"recommendations,omitempty"`
	ScaleEvents     []scaleEventFile                       `json:"scaleEvents,omitempty"`
}

type podFile struct {
	Name                string            `json:"name"`
	Phase               string            `json:"phase,omitempty"`
	Ready               bool              `json:"ready"`
	Deleted             bool              `json:"deleted,omitempty"`
	StartTime           string            `json:"startTime,omitempty"`
	ReadyTransitionTime string            `json:"readyTransitionTime,omitempty"`
	MetricTime          string            `json:"metricTime,omitempty"`
	MetricWindow        string            `json:"metricWindow,omitempty"`
	Requests            map[string]string `json:"requests,omitempty"`
	Usage               map[string]string `json:"usage,omitempty"`
	Containers          []containerFile   `json:"containers,omitempty"`
	Metrics             map[string]string `json:"metrics,omitempty"`
}

type containerFile struct {
	Name     string            `json:"name"`
	Requests map[string]string `json:"requests,omitempty"`
	Usage    map[string]string `json:"usage,omitempty"`
}

type recommendationFile struct {
	Time     string `json:"time"`
	Replicas int32  `json:"replicas"`
}

type scaleEventFile struct {
	Time string `json:"time"`
	From int32  `json:"from"`
	To   int32  `json:"to"`
}

// unmarshal decodes YAML or JSON strictly: unknown fields are errors.
func unmarshal(data []byte, v any) error {
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		// A value of the wrong type: name the field and the type wanted,
		// not the decoder's own structs.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%w: %s: a %s where a %s belongs", ErrInput, te.Field, te.Value, jsonKind(te.Type))
		}
		return fmt.Errorf("%w: %v", ErrInput, err)
	}
	return nil
}

// jsonKind names a Go type as the kind of value a scenario writes for it.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "list"
	default:
		return "mapping"
	}
}

func parseTime(path, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %q is not an RFC 3339 time", ErrInput, path, s)
	}
	return t, nil
}

func parseOptTime(path, s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := parseTime(path, s)
	return &t, err
}

func parseQuantity(path, s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return resource.Quantity{}, fmt.Errorf("%w: %s: %q is not a quantity", ErrInput, path, s)
	}
	return q, nil
}

func parseDuration(path, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: %s: %q is not a non-negative duration", ErrInput, path, s)
	}
	return d, nil
}

// parseSignedDuration is parseDuration for a time that may be before zero.
func parseSignedDuration(path, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %q is not a duration", ErrInput, path, s)
	}
	return d, nil
}

// sortedKeys keeps error messages deterministic over maps.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func quantities(path string, m map[string]string) (map[string]resource.Quantity, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]resource.Quantity, len(m))
	for _, k := range sortedKeys(m) {
		q, err := parseQuantity(path+"."+k, m[k])
		if err != nil {
			return nil, err
		}
		out[k] = q
	}
	return out, nil
}

func resources(path string, m map[string]string) (corev1.ResourceList, error) {
	q, err := quantities(path, m)
	if err != nil || q == nil {
		return nil, err
	}
	out := make(corev1.ResourceList, len(q))
	for k, v := range q {
		out[corev1.ResourceName(k)] = v
	}
	return out, nil
}

func (c *configFile) config(path string) (autoscale.Config, error) {
	var cfg autoscale.Config
	if c == nil {
		return cfg, nil
	}
	if c.Tolerance != nil {
		cfg.Tolerance = *c.Tolerance
	}
	cfg.FeatureGates = c.FeatureGates
	var err error
	for _, f := range []struct {
		name string
		s    string
		d    *time.Duration
	}{
		{"cpuInitializationPeriod", c.CPUInitializationPeriod, &cfg.CPUInitializationPeriod},
		{"initialReadinessDelay", c.InitialReadinessDelay, &cfg.InitialReadinessDelay},
		{"downscaleStabilizationWindow", c.DownscaleStabilizationWindow, &cfg.DownscaleStabilizationWindow},
		{"metricWindow", c.MetricWindow, &cfg.MetricWindow},
	} {
		if *f.d, err = parseDuration(path+"."+f.name, f.s); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %s: %v", ErrInput, path, err)
	}
	return cfg, nil
}

// DecodeRecommendInput parses a `shoal hpa recommend` input file.
func DecodeRecommendInput(data []byte) (autoscale.Config, autoscale.Input, error) {
	var f recommendFile
	var in autoscale.Input
	if err := unmarshal(data, &f); err != nil {
		return autoscale.Config{}, in, err
	}
	if f.HPA == nil {
		return autoscale.Config{}, in, fmt.Errorf("%w: hpa is required", ErrInput)
	}
	if err := autoscale.ValidateMetrics(&f.HPA.Spec); err != nil {
		return autoscale.Config{}, in, err
	}
	cfg, err := f.Config.config("config")
	if err != nil {
		return cfg, in, err
	}
	in.HPA = f.HPA
	if in.Now, err = parseTime("now", f.Now); err != nil {
		return cfg, in, err
	}
	in.CurrentReplicas, in.StatusReplicas = f.CurrentReplicas, f.StatusReplicas
	for i, p := range f.Pods {
		path := fmt.Sprintf("pods[%d]", i)
		pod := autoscale.Pod{Name: p.Name, Phase: corev1.PodPhase(p.Phase), Ready: p.Ready, Deleted: p.Deleted}
		if pod.StartTime, err = parseOptTime(path+".startTime", p.StartTime); err != nil {
			return cfg, in, err
		}
		if p.ReadyTransitionTime != "" {
			if pod.ReadyTransitionTime, err = parseTime(path+".readyTransitionTime", p.ReadyTransitionTime); err != nil {
				return cfg, in, err
			}
		}
		if pod.MetricTime, err = parseOptTime(path+".metricTime", p.MetricTime); err != nil {
			return cfg, in, err
		}
		if pod.MetricWindow, err = parseDuration(path+".metricWindow", p.MetricWindow); err != nil {
			return cfg, in, err
		}
		if pod.Requests, err = resources(path+".requests", p.Requests); err != nil {
			return cfg, in, err
		}
		if pod.Usage, err = resources(path+".usage", p.Usage); err != nil {
			return cfg, in, err
		}
		if pod.Metrics, err = quantities(path+".metrics", p.Metrics); err != nil {
			return cfg, in, err
		}
		for j, c := range p.Containers {
			cpath := path + ".containers[" + strconv.Itoa(j) + "]"
			ct := autoscale.Container{Name: c.Name}
			if ct.Requests, err = resources(cpath+".requests", c.Requests); err != nil {
				return cfg, in, err
			}
			if ct.Usage, err = resources(cpath+".usage", c.Usage); err != nil {
				return cfg, in, err
			}
			pod.Containers = append(pod.Containers, ct)
		}
		in.Pods = append(in.Pods, pod)
	}
	if in.ObjectMetrics, err = quantities("objectMetrics", f.ObjectMetrics); err != nil {
		return cfg, in, err
	}
	if in.ExternalMetrics, err = quantities("externalMetrics", f.ExternalMetrics); err != nil {
		return cfg, in, err
	}
	if f.Recommendations != nil {
		// An explicit empty list is a running controller's empty history;
		// no list at all is a fresh controller.
		in.Recommendations = []autoscale.Recommendation{}
		for i, r := range *f.Recommendations {
			t, err := parseTime(fmt.Sprintf("recommendations[%d].time", i), r.Time)
			if err != nil {
				return cfg, in, err
			}
			in.Recommendations = append(in.Recommendations, autoscale.Recommendation{Time: t, Replicas: r.Replicas})
		}
	}
	for i, e := range f.ScaleEvents {
		t, err := parseTime(fmt.Sprintf("scaleEvents[%d].time", i), e.Time)
		if err != nil {
			return cfg, in, err
		}
		in.ScaleEvents = append(in.ScaleEvents, autoscale.ScaleEvent{Time: t, From: e.From, To: e.To})
	}
	if err := in.Validate(); err != nil {
		return cfg, in, fmt.Errorf("%w: %v", ErrInput, err)
	}
	return cfg, in, nil
}

type scenarioFile struct {
	Name            string                                 `json:"name,omitempty"`
	HPA             *autoscalingv2.HorizontalPodAutoscaler `json:"hpa,omitempty"`
	ScaledObject    *autoscale.ScaledObject                `json:"scaledObject,omitempty"`
	InitialReplicas int32                                  `json:"initialReplicas,omitempty"`
	PodStartup      string                                 `json:"podStartup,omitempty"`
	PodStartups     []string                               `json:"podStartups,omitempty"`
	SyncPeriod      string                                 `json:"syncPeriod,omitempty"`
	SyncPhase       string                                 `json:"syncPhase,omitempty"`
	SyncTimes       []string                               `json:"syncTimes,omitempty"`
	ClockPhase      string                                 `json:"clockPhase,omitempty"`
	Metrics         *metricModelFile                       `json:"metrics,omitempty"`
	Duration        string                                 `json:"duration"`
	PodCapacity     float64                                `json:"podCapacity,omitempty"`
	PodBaseline     float64                                `json:"podBaseline,omitempty"`
	CPURequest      string                                 `json:"cpuRequest,omitempty"`
	Config          *configFile                            `json:"config,omitempty"`
	Load            []loadPointFile                        `json:"load"`
}

// metricModelFile is autoscale.MetricModel as written in a scenario: how
// late and how coarse the autoscaler's view of the load is.
type metricModelFile struct {
	Delay      string         `json:"delay,omitempty"`
	Resolution string         `json:"resolution,omitempty"`
	Phase      string         `json:"phase,omitempty"`
	Window     string         `json:"window,omitempty"`
	Discovery  string         `json:"discovery,omitempty"`
	Stale      string         `json:"stale,omitempty"`
	Pods       []podClockFile `json:"pods,omitempty"`
}

// podClockFile is autoscale.PodClock: when the pipeline measures one pod.
type podClockFile struct {
	Phase     string             `json:"phase,omitempty"`
	Discovery string             `json:"discovery,omitempty"`
	Samples   []metricSampleFile `json:"samples,omitempty"`
	Removed   string             `json:"removed,omitempty"`
}

// metricSampleFile is autoscale.MetricSample; its times may be negative
// (before the scenario's zero).
type metricSampleFile struct {
	At     string   `json:"at"`
	Window string   `json:"window,omitempty"`
	Seen   string   `json:"seen"`
	Value  *float64 `json:"value,omitempty"`
	Failed bool     `json:"failed,omitempty"`
}

func (m *metricModelFile) model() (autoscale.MetricModel, error) {
	var out autoscale.MetricModel
	if m == nil {
		return out, nil
	}
	for _, f := range []struct {
		name string
		s    string
		d    *time.Duration
	}{
		{"metrics.delay", m.Delay, &out.Delay},
		{"metrics.resolution", m.Resolution, &out.Resolution},
		{"metrics.phase", m.Phase, &out.Phase},
		{"metrics.window", m.Window, &out.Window},
		{"metrics.discovery", m.Discovery, &out.Discovery},
		{"metrics.stale", m.Stale, &out.Stale},
	} {
		var err error
		if *f.d, err = parseDuration(f.name, f.s); err != nil {
			return out, err
		}
	}
	for i, p := range m.Pods {
		var c autoscale.PodClock
		var err error
		if c.Phase, err = parseDuration(fmt.Sprintf("metrics.pods[%d].phase", i), p.Phase); err != nil {
			return out, err
		}
		if c.Discovery, err = parseDuration(fmt.Sprintf("metrics.pods[%d].discovery", i), p.Discovery); err != nil {
			return out, err
		}
		if c.Removed, err = parseDuration(fmt.Sprintf("metrics.pods[%d].removed", i), p.Removed); err != nil {
			return out, err
		}
		for j, smp := range p.Samples {
			path := fmt.Sprintf("metrics.pods[%d].samples[%d]", i, j)
			var ms autoscale.MetricSample
			if ms.At, err = parseSignedDuration(path+".at", smp.At); err != nil {
				return out, err
			}
			if ms.Window, err = parseDuration(path+".window", smp.Window); err != nil {
				return out, err
			}
			if ms.Seen, err = parseSignedDuration(path+".seen", smp.Seen); err != nil {
				return out, err
			}
			ms.Value, ms.Failed = smp.Value, smp.Failed
			c.Samples = append(c.Samples, ms)
		}
		out.Pods = append(out.Pods, c)
	}
	return out, nil
}

type loadPointFile struct {
	At    string  `json:"at"`
	Value float64 `json:"value"`
	Ramp  bool    `json:"ramp,omitempty"`
}

// Scenario is a decoded `shoal hpa simulate` scenario with its name.
type Scenario struct {
	Name string
	autoscale.Scenario
}

// DecodeScenario parses a `shoal hpa simulate` scenario file.
func DecodeScenario(data []byte) (Scenario, error) {
	var f scenarioFile
	var s Scenario
	if err := unmarshal(data, &f); err != nil {
		return s, err
	}
	s.Name, s.HPA, s.ScaledObject, s.InitialReplicas, s.PodCapacity, s.PodBaseline = f.Name, f.HPA, f.ScaledObject, f.InitialReplicas, f.PodCapacity, f.PodBaseline
	var err error
	if s.Config, err = f.Config.config("config"); err != nil {
		return s, err
	}
	if s.PodStartup, err = parseDuration("podStartup", f.PodStartup); err != nil {
		return s, err
	}
	if s.SyncPeriod, err = parseDuration("syncPeriod", f.SyncPeriod); err != nil {
		return s, err
	}
	if s.SyncPhase, err = parseDuration("syncPhase", f.SyncPhase); err != nil {
		return s, err
	}
	if s.ClockPhase, err = parseDuration("clockPhase", f.ClockPhase); err != nil {
		return s, err
	}
	for i, st := range f.PodStartups {
		d, err := parseDuration(fmt.Sprintf("podStartups[%d]", i), st)
		if err != nil {
			return s, err
		}
		s.PodStartups = append(s.PodStartups, d)
	}
	for i, st := range f.SyncTimes {
		d, err := parseDuration(fmt.Sprintf("syncTimes[%d]", i), st)
		if err != nil {
			return s, err
		}
		s.SyncTimes = append(s.SyncTimes, d)
	}
	if s.Metrics, err = f.Metrics.model(); err != nil {
		return s, err
	}
	if s.Duration, err = parseDuration("duration", f.Duration); err != nil {
		return s, err
	}
	if f.CPURequest != "" {
		if s.CPURequest, err = parseQuantity("cpuRequest", f.CPURequest); err != nil {
			return s, err
		}
	}
	for i, p := range f.Load {
		at, err := parseDuration(fmt.Sprintf("load[%d].at", i), p.At)
		if err != nil {
			return s, err
		}
		s.Load = append(s.Load, autoscale.LoadPoint{At: at, Value: p.Value, Ramp: p.Ramp})
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%w: %v", ErrInput, err)
	}
	return s, nil
}
