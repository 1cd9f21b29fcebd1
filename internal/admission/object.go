package admission

import (
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Object is a Pod or a pod-owning workload, reduced to what the rules
// read: its identity, labels and pod template.
type Object struct {
	Kind      string
	Name      string
	Namespace string
	// Labels are the object's own labels.
	Labels map[string]string
	// Pod is the pod template: the Pod's own metadata and spec, or the
	// workload's spec.template.
	Pod *corev1.PodTemplateSpec
	// SpecPath is the JSON pointer of the pod spec in the object
	// ("/spec", "/spec/template/spec", "/spec/jobTemplate/spec/template/spec").
	SpecPath string
	// LabelsPath is the JSON pointer of the pod template's labels.
	LabelsPath string
}

// Kinds lists the kinds the webhook evaluates.
var Kinds = []string{"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"}

// specPaths are where each kind keeps its pod spec.
var specPaths = map[string]string{
	"Pod":         "/spec",
	"Deployment":  "/spec/template/spec",
	"ReplicaSet":  "/spec/template/spec",
	"StatefulSet": "/spec/template/spec",
	"DaemonSet":   "/spec/template/spec",
	"Job":         "/spec/template/spec",
	"CronJob":     "/spec/jobTemplate/spec/template/spec",
}

// Supported reports whether kind is evaluated.
func Supported(kind string) bool { _, ok := specPaths[kind]; return ok }

// DecodeObject decodes a JSON object of a supported kind.
func DecodeObject(kind string, raw []byte) (*Object, error) {
	o := &Object{Kind: kind, SpecPath: specPaths[kind]}
	switch kind {
	case "Pod":
		var p corev1.Pod
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("decoding Pod: %w", err)
		}
		o.Name, o.Namespace, o.Labels = p.Name, p.Namespace, p.Labels
		o.Pod = &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}
		o.LabelsPath = "/metadata/labels"
		return o, nil
	case "Deployment":
		var d appsv1.Deployment
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decoding Deployment: %w", err)
		}
		o.Name, o.Namespace, o.Labels, o.Pod = d.Name, d.Namespace, d.Labels, &d.Spec.Template
	case "ReplicaSet":
		var d appsv1.ReplicaSet
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decoding ReplicaSet: %w", err)
		}
		o.Name, o.Namespace, o.Labels, o.Pod = d.Name, d.Namespace, d.Labels, &d.Spec.Template
	case "StatefulSet":
		var d appsv1.StatefulSet
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decoding StatefulSet: %w", err)
		}
		o.Name, o.Namespace, o.Labels, o.Pod = d.Name, d.Namespace, d.Labels, &d.Spec.Template
	case "DaemonSet":
		var d appsv1.DaemonSet
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decoding DaemonSet: %w", err)
		}
		o.Name, o.Namespace, o.Labels, o.Pod = d.Name, d.Namespace, d.Labels, &d.Spec.Template
	case "Job":
		var d batchv1.Job
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decoding Job: %w", err)
		}
		o.Name, o.Namespace, o.Labels, o.Pod = d.Name, d.Namespace, d.Labels, &d.Spec.Template
	case "CronJob":
		var d batchv1.CronJob
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decoding CronJob: %w", err)
		}
		o.Name, o.Namespace, o.Labels, o.Pod = d.Name, d.Namespace, d.Labels, &d.Spec.JobTemplate.Spec.Template
	default:
		return nil, fmt.Errorf("kind %q is not evaluated (want one of %v)", kind, Kinds)
	}
	o.LabelsPath = o.SpecPath[:len(o.SpecPath)-len("/spec")] + "/metadata/labels"
	return o, nil
}

// container is one container of any of the three lists, with where it is.
type container struct {
	// What is "container", "init container" or "ephemeral container".
	What  string
	Name  string
	Image string
	SC    *corev1.SecurityContext
	// Path is the JSON pointer of the container in the object.
	Path string
	// C is the container itself (an ephemeral container's common part).
	C *corev1.Container
}

// containers lists every container of o's pod spec.
func (o *Object) containers() []container {
	var out []container
	s := &o.Pod.Spec
	for i := range s.InitContainers {
		c := &s.InitContainers[i]
		out = append(out, container{"init container", c.Name, c.Image, c.SecurityContext, fmt.Sprintf("%s/initContainers/%d", o.SpecPath, i), c})
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		out = append(out, container{"container", c.Name, c.Image, c.SecurityContext, fmt.Sprintf("%s/containers/%d", o.SpecPath, i), c})
	}
	for i := range s.EphemeralContainers {
		c := (*corev1.Container)(&s.EphemeralContainers[i].EphemeralContainerCommon)
		out = append(out, container{"ephemeral container", c.Name, c.Image, c.SecurityContext, fmt.Sprintf("%s/ephemeralContainers/%d", o.SpecPath, i), c})
	}
	return out
}

// annotationsPath is the JSON pointer of the pod template's annotations.
func (o *Object) annotationsPath() string {
	return strings.TrimSuffix(o.LabelsPath, "/labels") + "/annotations"
}

// describe names o for messages: `Deployment "shop/api"`.
func (o *Object) describe() string {
	if o.Namespace == "" {
		return fmt.Sprintf("%s %q", o.Kind, o.Name)
	}
	return fmt.Sprintf("%s %q", o.Kind, o.Namespace+"/"+o.Name)
}
