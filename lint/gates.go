package lint

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// KubernetesVersion is the Kubernetes release whose API types (k8s.io/api
// of the same minor version) and default feature gates the linter checks
// manifests against.
const KubernetesVersion = "v1.37.2"

// FeatureGate is a Kubernetes feature gate as the API server of
// [KubernetesVersion] ships it.
type FeatureGate struct {
	Name string `json:"name"`
	// Stage is "ALPHA", "BETA" or "GA", as the API server's
	// kubernetes_feature_enabled metric labels it.
	Stage string `json:"stage"`
	// Default is whether the gate is on when the API server is started
	// without --feature-gates.
	Default bool `json:"default"`
}

// GatedField is a field of a kind the linter decodes that the API server
// keeps only while its feature gate is on: with the gate off it drops the
// field from the object on create, without an error.
type GatedField struct {
	// Type is the Go type holding the field, with its API group and
	// version: "core/v1.HTTPGetAction".
	Type string `json:"type"`
	// Field is the field's JSON name: "protocol".
	Field string `json:"field"`
	Gate  string `json:"gate"`
	// Since is the Kubernetes minor release whose API first had the field,
	// as far as the linter tells: "1.37", or "1.35-1.36" for fields added
	// between v1.34 and v1.36; "" for fields older than v1.35.
	Since string `json:"since,omitempty"`

	typ reflect.Type
}

// featureGates are the gates of [gatedFields] with their stage and default
// on the API server of KubernetesVersion, as its --help lists them (gates
// it does not list are GA and locked on); the lab's e2e tests compare them
// with the server's kubernetes_feature_enabled metric. A gate may be beta
// and still off by default (GenericWorkload).
var featureGates = []FeatureGate{
	{Name: "AtomicWriteVolumeUserFields", Stage: "ALPHA"},
	{Name: "ClusterTrustBundleProjection", Stage: "GA", Default: true},
	{Name: "ContainerRestartRules", Stage: "BETA", Default: true},
	{Name: "CrossNamespaceVolumeDataSource", Stage: "ALPHA"},
	{Name: "DynamicResourceAllocation", Stage: "GA", Default: true},
	{Name: "EmptyDirVolumeMode", Stage: "ALPHA"},
	{Name: "EnvFiles", Stage: "BETA", Default: true},
	{Name: "EvictionRequestAPI", Stage: "ALPHA"},
	{Name: "GRPCContainerProbeTLS", Stage: "ALPHA"},
	{Name: "GenericWorkload", Stage: "BETA"},
	{Name: "H2CContainerProbe", Stage: "ALPHA"},
	{Name: "HPAConfigurableTolerance", Stage: "GA", Default: true},
	{Name: "HostnameOverride", Stage: "GA", Default: true},
	{Name: "InPlacePodVerticalScaling", Stage: "GA", Default: true},
	{Name: "MaxUnavailableStatefulSet", Stage: "BETA", Default: true},
	{Name: "PodCertificateProjection", Stage: "GA", Default: true},
	{Name: "PodLevelResources", Stage: "BETA", Default: true},
	{Name: "SELinuxChangePolicy", Stage: "GA", Default: true},
	{Name: "SupplementalGroupsPolicy", Stage: "GA", Default: true},
	{Name: "VolumeAttributesClass", Stage: "GA", Default: true},
	{Name: "VolumeBindMountOptions", Stage: "ALPHA"},
	{Name: "WorkloadWithJob", Stage: "ALPHA"},
}

func gated[T any](field, gate, since string) GatedField {
	t := reflect.TypeFor[T]()
	return GatedField{Type: apiTypeName(t), Field: field, Gate: gate, Since: since, typ: t}
}

// gatedFields are the fields marked +featureGate in k8s.io/api that the
// kinds the linter decodes reach from their spec;
// TestGatedFieldsMatchAPI keeps the list equal to the module's.
var gatedFields = []GatedField{
	gated[corev1.ClusterTrustBundleProjection]("user", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.ConfigMapVolumeSource]("defaultUser", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.DownwardAPIVolumeFile]("user", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.DownwardAPIVolumeSource]("defaultUser", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.KeyToPath]("user", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.PodCertificateProjection]("user", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.ProjectedVolumeSource]("defaultUser", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.SecretVolumeSource]("defaultUser", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.ServiceAccountTokenProjection]("user", "AtomicWriteVolumeUserFields", "1.37"),
	gated[corev1.EmptyDirVolumeSource]("mode", "EmptyDirVolumeMode", "1.37"),
	gated[corev1.GRPCAction]("mode", "GRPCContainerProbeTLS", "1.37"),
	gated[corev1.HTTPGetAction]("protocol", "H2CContainerProbe", "1.37"),
	gated[corev1.PodSpec]("evictionResponders", "EvictionRequestAPI", "1.37"),
	gated[corev1.VolumeMount]("bindMountOptions", "VolumeBindMountOptions", "1.37"),
	gated[batchv1.JobSpec]("scheduling", "WorkloadWithJob", "1.37"),
	gated[corev1.PodSpec]("schedulingGroup", "GenericWorkload", "1.35-1.36"),
	gated[corev1.Container]("resizePolicy", "InPlacePodVerticalScaling", ""),
	gated[corev1.EphemeralContainerCommon]("resizePolicy", "InPlacePodVerticalScaling", ""),
	gated[corev1.Container]("restartPolicyRules", "ContainerRestartRules", ""),
	gated[corev1.EphemeralContainerCommon]("restartPolicyRules", "ContainerRestartRules", ""),
	gated[corev1.EnvVarSource]("fileKeyRef", "EnvFiles", ""),
	gated[corev1.PodSecurityContext]("seLinuxChangePolicy", "SELinuxChangePolicy", ""),
	gated[corev1.PodSecurityContext]("supplementalGroupsPolicy", "SupplementalGroupsPolicy", ""),
	gated[corev1.PodSpec]("hostnameOverride", "HostnameOverride", ""),
	gated[corev1.PodSpec]("resourceClaims", "DynamicResourceAllocation", ""),
	gated[corev1.ResourceRequirements]("claims", "DynamicResourceAllocation", ""),
	gated[corev1.PodSpec]("resources", "PodLevelResources", ""),
	gated[appsv1.RollingUpdateStatefulSetStrategy]("maxUnavailable", "MaxUnavailableStatefulSet", ""),
	gated[autoscalingv2.HPAScalingRules]("tolerance", "HPAConfigurableTolerance", ""),
	gated[corev1.PersistentVolumeClaimSpec]("volumeAttributesClassName", "VolumeAttributesClass", ""),
	gated[corev1.TypedObjectReference]("namespace", "CrossNamespaceVolumeDataSource", ""),
	gated[corev1.VolumeProjection]("clusterTrustBundle", "ClusterTrustBundleProjection", ""),
	gated[corev1.VolumeProjection]("podCertificate", "PodCertificateProjection", ""),
}

// FeatureGates lists the feature gates that guard fields the linter knows,
// by name.
func FeatureGates() []FeatureGate { return slices.Clone(featureGates) }

// GatedFields lists the fields behind a feature gate that the linter
// knows, as [GatedField.Type] and Field name them.
func GatedFields() []GatedField {
	fs := slices.Clone(gatedFields)
	for i := range fs {
		fs[i].typ = nil
	}
	return fs
}

// apiTypeName names a k8s.io/api type as "core/v1.PodSpec".
func apiTypeName(t reflect.Type) string {
	return strings.TrimPrefix(t.PkgPath(), "k8s.io/api/") + "." + t.Name()
}

func featureGate(name string) (FeatureGate, bool) {
	i := slices.IndexFunc(featureGates, func(g FeatureGate) bool { return g.Name == name })
	if i < 0 {
		return FeatureGate{}, false
	}
	return featureGates[i], true
}

// offByDefault maps each k8s.io/api struct type to its fields whose gate
// is off by default.
var offByDefault = func() map[reflect.Type]map[string]GatedField {
	m := map[reflect.Type]map[string]GatedField{}
	for _, f := range gatedFields {
		g, ok := featureGate(f.Gate)
		if !ok {
			panic(fmt.Sprintf("lint: field %s.%s names gate %s, which featureGates lacks", f.Type, f.Field, f.Gate))
		}
		if g.Default {
			continue
		}
		if m[f.typ] == nil {
			m[f.typ] = map[string]GatedField{}
		}
		m[f.typ][f.Field] = f
	}
	return m
}()

// checkFeatureGates reports the fields a default API server drops because
// their feature gate is off.
func checkFeatureGates(s *set) []Finding {
	var fs []Finding
	for _, d := range s.docs {
		if d.Object == nil {
			continue
		}
		visitGated(reflect.ValueOf(d.Object), "", func(path string, f GatedField) {
			g, _ := featureGate(f.Gate)
			fs = append(fs, emit(d, ruleFeatureGate, path,
				"%s needs feature gate %s (%s, off by default in Kubernetes %s): the API server drops the field, so the setting never takes effect",
				path, f.Gate, strings.ToLower(g.Stage), KubernetesVersion)...)
		})
	}
	return fs
}

// visitGated walks a decoded k8s.io/api object and calls visit with the
// JSON path of every set field whose gate is off by default. Status, the
// object's or that of an embedded template (a StatefulSet's
// volumeClaimTemplates), is skipped: the API server ignores it on create.
func visitGated(v reflect.Value, path string, visit func(path string, f GatedField)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			visitGated(v.Elem(), path, visit)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			visitGated(v.Index(i), fmt.Sprintf("%s[%d]", path, i), visit)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			visitGated(v.MapIndex(k), joinPath(path, fmt.Sprint(k)), visit)
		}
	case reflect.Struct:
		t := v.Type()
		// Metadata, quantities and int-or-strings hold no gated field.
		if !strings.HasPrefix(t.PkgPath(), "k8s.io/api/") {
			return
		}
		gated := offByDefault[t]
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			fv := v.Field(i)
			switch {
			case name == "-":
				continue
			case name == "" && sf.Anonymous: // inline, as EphemeralContainer's EphemeralContainerCommon
				visitGated(fv, path, visit)
				continue
			case name == "status" && strings.HasSuffix(sf.Type.Name(), "Status"):
				continue
			}
			p := joinPath(path, name)
			if f, ok := gated[name]; ok && isSet(fv) {
				visit(p, f)
			}
			visitGated(fv, p, visit)
		}
	}
}

// isSet reports whether a field would appear in the object's JSON: not
// nil, and for lists and maps not empty either, as omitempty drops those.
func isSet(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() > 0
	}
	return !v.IsZero()
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
