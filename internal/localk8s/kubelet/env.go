package kubelet

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// defaultPath is the PATH a container starts with when Config.BaseEnv is nil:
// the one container runtimes give images that set none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// The node a pod runs on, as the downward API reports it.
const (
	nodeName = "localhost"
	hostIP   = "127.0.0.1"
)

// envVarName is what Kubernetes accepts as an environment variable name
// (C_IDENTIFIER plus '-' and '.', not starting with a digit).
var envVarName = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)

// fieldPathKey matches metadata.labels['KEY'] and metadata.annotations['KEY'].
var fieldPathKey = regexp.MustCompile(`^metadata\.(labels|annotations)\['([^']*)'\]$`)

// envList is an ordered environment in which a later entry of the same name
// replaces an earlier one, as Kubernetes builds a container's environment.
type envList struct {
	names  []string
	values map[string]string
}

func (e *envList) set(name, value string) {
	if e.values == nil {
		e.values = make(map[string]string)
	}
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *envList) lookup(name string) (string, bool) {
	v, ok := e.values[name]
	return v, ok
}

// environ returns the entries as NAME=VALUE in order of first definition.
func (e *envList) environ() []string {
	out := make([]string, 0, len(e.names))
	for _, n := range e.names {
		out = append(out, n+"="+e.values[n])
	}
	return out
}

// resolveEnv builds the environment a container declares (envFrom, then env,
// each env value expanded against what came before it), as the kubelet does.
// The result does not include the base environment or HOST.
func (cfg *Config) resolveEnv(c *corev1.Container) (*envList, error) {
	env := &envList{}
	for i, from := range c.EnvFrom {
		var kind, name string
		var optional bool
		switch {
		case from.ConfigMapRef != nil:
			kind, name = "ConfigMap", from.ConfigMapRef.Name
			optional = from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
		case from.SecretRef != nil:
			kind, name = "Secret", from.SecretRef.Name
			optional = from.SecretRef.Optional != nil && *from.SecretRef.Optional
		default:
			return nil, fmt.Errorf("envFrom[%d]: neither configMapRef nor secretRef set", i)
		}
		if cfg.LookupAll == nil {
			return nil, fmt.Errorf("envFrom[%d]: %s %q: no source of %ss configured", i, kind, name, kind)
		}
		data, err := cfg.LookupAll(kind, name)
		if err != nil {
			if optional {
				continue
			}
			return nil, fmt.Errorf("envFrom[%d]: %s %q: %w", i, kind, name, err)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			// The kubelet skips keys that are not valid variable names.
			if n := from.Prefix + k; envVarName.MatchString(n) {
				env.set(n, data[k])
			}
		}
	}
	for _, v := range c.Env {
		if !envVarName.MatchString(v.Name) {
			return nil, fmt.Errorf("env %q: not a valid environment variable name", v.Name)
		}
		if v.ValueFrom == nil {
			env.set(v.Name, expand(v.Value, env.lookup))
			continue
		}
		val, err := cfg.valueFrom(c, v.ValueFrom)
		if errors.Is(err, errOptionalMissing) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", v.Name, err)
		}
		env.set(v.Name, val)
	}
	return env, nil
}

// errOptionalMissing marks an optional key reference whose source is absent;
// the variable is then left out.
var errOptionalMissing = errors.New("optional reference not found")

func (cfg *Config) valueFrom(c *corev1.Container, src *corev1.EnvVarSource) (string, error) {
	switch {
	case src.FieldRef != nil:
		return cfg.fieldRef(src.FieldRef.FieldPath)
	case src.ResourceFieldRef != nil:
		return cfg.resourceFieldRef(c, src.ResourceFieldRef)
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		return cfg.keyRef("Secret", r.Name, r.Key, r.Optional)
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		return cfg.keyRef("ConfigMap", r.Name, r.Key, r.Optional)
	case src.FileKeyRef != nil:
		return "", errors.New("fileKeyRef is not supported")
	}
	return "", errors.New("valueFrom has no source")
}

func (cfg *Config) keyRef(kind, name, key string, optional *bool) (string, error) {
	what := fmt.Sprintf("%s %q key %q", kind, name, key)
	if cfg.Lookup == nil {
		return "", fmt.Errorf("%s: no source of %ss configured", what, kind)
	}
	v, err := cfg.Lookup(kind, name, key)
	if err != nil {
		if optional != nil && *optional {
			return "", errOptionalMissing
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func (cfg *Config) fieldRef(path string) (string, error) {
	switch path {
	case "metadata.name":
		return cfg.Name, nil
	case "metadata.namespace":
		return cfg.Namespace, nil
	case "metadata.uid":
		return cfg.UID, nil
	case "status.podIP", "status.podIPs":
		return cfg.IP.String(), nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "spec.nodeName":
		return nodeName, nil
	case "spec.serviceAccountName":
		return cfg.Spec.ServiceAccountName, nil
	case "metadata.labels":
		return formatMap(cfg.Labels), nil
	case "metadata.annotations":
		return formatMap(cfg.Annotations), nil
	}
	if m := fieldPathKey.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return cfg.Labels[m[2]], nil
		}
		return cfg.Annotations[m[2]], nil
	}
	return "", fmt.Errorf("fieldRef %q: unsupported field path", path)
}

// formatMap renders a label or annotation map as the downward API does:
// one KEY="VALUE" per line, sorted by key.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k + "=" + strconv.Quote(m[k])
	}
	return strings.Join(lines, "\n")
}

func (cfg *Config) resourceFieldRef(c *corev1.Container, r *corev1.ResourceFieldSelector) (string, error) {
	if r.ContainerName != "" && r.ContainerName != c.Name {
		found := false
		for i := range cfg.Spec.Containers {
			if cfg.Spec.Containers[i].Name == r.ContainerName {
				c, found = &cfg.Spec.Containers[i], true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("resourceFieldRef: no container %q", r.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(r.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", r.Resource)
	}
	var q resource.Quantity
	var set bool
	if kind == "limits" {
		q, set = c.Resources.Limits[corev1.ResourceName(name)]
		if !set {
			// Without a limit the kubelet reports the node's allocatable.
			q, set = cfg.allocatable(name)
		}
	} else {
		q, set = c.Resources.Requests[corev1.ResourceName(name)]
		if !set {
			// API defaulting copies limits to unset requests.
			q, set = c.Resources.Limits[corev1.ResourceName(name)]
		}
	}
	divisor := r.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	switch name {
	case "cpu":
		if !set {
			return "0", nil
		}
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case "memory", "ephemeral-storage":
		if !set {
			return "0", nil
		}
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
	}
	return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", r.Resource)
}

func (cfg *Config) allocatable(name string) (resource.Quantity, bool) {
	switch name {
	case "cpu":
		return *resource.NewQuantity(int64(cfg.nodeCPU()), resource.DecimalSI), true
	case "memory":
		if m := cfg.nodeMemory(); m > 0 {
			return *resource.NewQuantity(m, resource.BinarySI), true
		}
	}
	return resource.Quantity{}, false
}
