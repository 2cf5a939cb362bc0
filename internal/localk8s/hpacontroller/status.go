package hpacontroller

import (
	"fmt"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
)

// metricsText renders the metrics as kubectl's TARGETS column does,
// naming each metric: "cpu: 35%/70%, http_requests_per_second: 12/100".
// A metric without a current value shows <unknown>.
func metricsText(hpa *autoscalingv2.HorizontalPodAutoscaler, statuses []autoscalingv2.MetricStatus) string {
	if len(hpa.Spec.Metrics) == 0 {
		return "<none>"
	}
	parts := make([]string, 0, len(hpa.Spec.Metrics))
	for i, spec := range hpa.Spec.Metrics {
		var st autoscalingv2.MetricStatus
		if i < len(statuses) {
			st = statuses[i]
		}
		var name string
		var target autoscalingv2.MetricTarget
		var current *autoscalingv2.MetricValueStatus
		// kubectl marks averages only where the target could also be a total.
		avg := spec.Object != nil || spec.External != nil
		switch {
		case spec.Resource != nil:
			name, target = string(spec.Resource.Name), spec.Resource.Target
			if st.Resource != nil {
				current = &st.Resource.Current
			}
		case spec.ContainerResource != nil:
			name, target = spec.ContainerResource.Container+"/"+string(spec.ContainerResource.Name), spec.ContainerResource.Target
			if st.ContainerResource != nil {
				current = &st.ContainerResource.Current
			}
		case spec.Pods != nil:
			name, target = spec.Pods.Metric.Name, spec.Pods.Target
			if st.Pods != nil {
				current = &st.Pods.Current
			}
		case spec.Object != nil:
			name, target = spec.Object.Metric.Name, spec.Object.Target
			if st.Object != nil {
				current = &st.Object.Current
			}
		case spec.External != nil:
			name, target = spec.External.Metric.Name, spec.External.Target
			if st.External != nil {
				current = &st.External.Current
			}
		default:
			continue
		}
		parts = append(parts, name+": "+targetText(target, current, avg))
	}
	return strings.Join(parts, ", ")
}

func targetText(target autoscalingv2.MetricTarget, current *autoscalingv2.MetricValueStatus, avg bool) string {
	const unknown = "<unknown>"
	cur := unknown
	switch target.Type {
	case autoscalingv2.UtilizationMetricType:
		if current != nil && current.AverageUtilization != nil {
			cur = fmt.Sprintf("%d%%", *current.AverageUtilization)
		}
		want := unknown
		if target.AverageUtilization != nil {
			want = fmt.Sprintf("%d%%", *target.AverageUtilization)
		}
		return cur + "/" + want
	case autoscalingv2.AverageValueMetricType:
		if current != nil && current.AverageValue != nil {
			cur = current.AverageValue.String()
		}
		text := cur + "/" + quantityText(target.AverageValue)
		if avg {
			text += " (avg)"
		}
		return text
	default:
		if current != nil && current.Value != nil {
			cur = current.Value.String()
		}
		return cur + "/" + quantityText(target.Value)
	}
}

func quantityText(q *resource.Quantity) string {
	if q == nil {
		return "<unknown>"
	}
	return q.String()
}
