package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Workload is what the node agent attributed to a caller: taken from the
// kernel (peer credentials -> pid -> cgroup -> container) and from the
// container runtime, never from anything the workload says.
type Workload struct {
	Node      string
	Container string // container runtime id
	Image     string // manifest digest
	// Namespace is the Kubernetes namespace (io.kubernetes.pod.namespace),
	// else the containerd namespace.
	Namespace      string
	ServiceAccount string // Kubernetes service account, "" outside Kubernetes
	Pod            string
	App            string // owner application (label app.kubernetes.io/name or app)
	Labels         map[string]string
}

// DefaultTemplate names a workload as SPIFFE's Kubernetes convention does.
const DefaultTemplate = "spiffe://{trustDomain}/ns/{namespace}/sa/{serviceAccount}"

// Other forms a deployment may choose.
const (
	// AppTemplate: one identity per owner application.
	AppTemplate = "spiffe://{trustDomain}/app/{app}"
	// WorkloadTemplate: one identity per pod (or container outside
	// Kubernetes).
	WorkloadTemplate = "spiffe://{trustDomain}/ns/{namespace}/pod/{pod}"
)

// Template is a parsed SPIFFE ID template: literal path text and fields in
// braces ({namespace}, {serviceAccount}, {pod}, {container}, {app}, {node},
// {label:KEY}). Each field fills exactly one path segment's text: a value
// with '/' or a character SPIFFE IDs forbid is refused, so a label cannot
// add path segments or name another workload.
type Template struct {
	raw   string
	parts []part
}

type part struct {
	lit   string
	field string // "" for a literal
}

var fields = map[string]func(Workload) string{
	"namespace":      func(w Workload) string { return w.Namespace },
	"serviceAccount": func(w Workload) string { return w.ServiceAccount },
	"pod":            func(w Workload) string { return w.Pod },
	"container":      func(w Workload) string { return w.Container },
	"app":            func(w Workload) string { return w.App },
	"node":           func(w Workload) string { return w.Node },
}

// ParseTemplate reads a template; it must start with
// "spiffe://{trustDomain}/" and name at least one field.
func ParseTemplate(s string) (*Template, error) {
	rest, ok := strings.CutPrefix(s, "spiffe://{trustDomain}/")
	if !ok {
		return nil, fmt.Errorf("parsing SPIFFE ID template %q: it must start with spiffe://{trustDomain}/", s)
	}
	t := &Template{raw: s}
	haveField := false
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("parsing SPIFFE ID template %q: unclosed {", s)
		}
		f := rest[i+1 : i+j]
		if _, ok := fields[f]; !ok {
			key, isLabel := strings.CutPrefix(f, "label:")
			if !isLabel || key == "" {
				return nil, fmt.Errorf("parsing SPIFFE ID template %q: unknown field {%s}", s, f)
			}
		}
		t.parts = append(t.parts, part{field: f})
		haveField = true
		rest = rest[i+j+1:]
	}
	for _, p := range t.parts {
		if strings.ContainsAny(p.lit, "{}") {
			return nil, fmt.Errorf("parsing SPIFFE ID template %q: stray brace", s)
		}
	}
	if !haveField {
		return nil, fmt.Errorf("parsing SPIFFE ID template %q: it names no field, so every workload would share one identity", s)
	}
	if _, err := t.ID(spiffeid.RequireTrustDomainFromString("example.org"), exampleWorkload(t)); err != nil {
		return nil, fmt.Errorf("parsing SPIFFE ID template %q: %w", s, err)
	}
	return t, nil
}

func (t *Template) String() string { return t.raw }

// ErrMissingField says a workload lacks what the template names (a
// container outside Kubernetes has no service account): no identity.
var ErrMissingField = errors.New("the workload lacks a field the SPIFFE ID template names")

// ID fills the template for w in trust domain td.
func (t *Template) ID(td spiffeid.TrustDomain, w Workload) (spiffeid.ID, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.field == "" {
			b.WriteString(p.lit)
			continue
		}
		v := value(p.field, w)
		if v == "" {
			return spiffeid.ID{}, fmt.Errorf("%w: {%s}", ErrMissingField, p.field)
		}
		if err := segmentText(v); err != nil {
			return spiffeid.ID{}, fmt.Errorf("field {%s} = %q: %w", p.field, v, err)
		}
		b.WriteString(v)
	}
	id, err := spiffeid.FromPath(td, "/"+b.String())
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("making a SPIFFE ID from %q: %w", t.raw, err)
	}
	return id, nil
}

func value(field string, w Workload) string {
	if f, ok := fields[field]; ok {
		return f(w)
	}
	return w.Labels[strings.TrimPrefix(field, "label:")]
}

// segmentText checks v may stand in a path segment: SPIFFE's path
// characters, no '/', not "." or "..".
func segmentText(v string) error {
	if v == "." || v == ".." {
		return errors.New("a dot segment")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return fmt.Errorf("character %q is not allowed in a SPIFFE ID path segment", c)
		}
	}
	return nil
}

func exampleWorkload(t *Template) Workload {
	w := Workload{Node: "n", Container: "c", Image: "sha256:0", Namespace: "ns", ServiceAccount: "sa", Pod: "p", App: "a", Labels: map[string]string{}}
	for _, p := range t.parts {
		if k, ok := strings.CutPrefix(p.field, "label:"); ok {
			w.Labels[k] = "v"
		}
	}
	return w
}
