package fuzz

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Request is one generated request: what it sends, before the target URL
// and the credentials are added.
type Request struct {
	Op     string `json:"operation"`
	Method string `json:"method"`
	// Path is the operation's path template; PathValues fill it.
	Path       string            `json:"path"`
	PathValues map[string]string `json:"pathValues,omitempty"`
	Query      []Pair            `json:"query,omitempty"`
	Header     []Pair            `json:"header,omitempty"`
	// Body is the JSON body (HasBody tells a null body from none).
	Body    any  `json:"body,omitempty"`
	HasBody bool `json:"hasBody,omitempty"`
	// Raw, when set, is sent as the body instead (malformed JSON).
	Raw string `json:"raw,omitempty"`
	// Mutation says how the request departs from a valid one ("" for a
	// valid request).
	Mutation string `json:"mutation,omitempty"`
}

// Pair is a query or header parameter.
type Pair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (r Request) clone() Request {
	c := r
	c.PathValues = make(map[string]string, len(r.PathValues))
	for k, v := range r.PathValues {
		c.PathValues[k] = v
	}
	c.Query = slices.Clone(r.Query)
	c.Header = slices.Clone(r.Header)
	c.Body = cloneJSON(r.Body)
	return c
}

func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = cloneJSON(e)
		}
		return a
	}
	return v
}

// maxDepth bounds the nesting of generated values.
const maxDepth = 12

// Attack strings sent in place of valid values.
const (
	hugeLen        = 10000
	pathTraversal  = "../../../../../../etc/passwd"
	unicodeProbe   = "ü日本語\u202e\U0001F600\u0000"
	overflowNumber = "9223372036854775808"
)

var injections = []string{
	"' OR '1'='1' --",
	"\"; DROP TABLE users; --",
	"<script>alert(1)</script>",
	"${jndi:ldap://127.0.0.1/a}",
	"{{7*7}}",
	"$(id)",
	"%00%0d%0aX-Injected: 1",
}

// generator makes requests from an operation's schemas.
type generator struct {
	rng *rand.Rand
	// pool holds values earlier responses returned, by lower-case field
	// name, for path parameters of the same name (and "id").
	pool map[string]string
}

// valid builds a request with every parameter and a body that satisfy the
// schemas, taking path values from the pool where it has them.
func (g *generator) valid(op *operation) Request {
	r := Request{Op: op.ID, Method: op.Method, Path: op.Path, PathValues: map[string]string{}}
	for _, p := range op.Params {
		if !p.Required && !p.Pinned && p.In != openapi3.ParameterInPath {
			// Optional parameters are left out of the valid request (free
			// strings such as a selector's syntax would make it invalid);
			// mutations set them, to valid values too.
			continue
		}
		v := p.Value
		if !p.Pinned {
			v = scalarString(g.value(p.Schema, 0))
		}
		switch p.In {
		case openapi3.ParameterInPath:
			if pv, ok := g.fromPool(op, p.Name); ok && !p.Pinned {
				v = pv
			}
			r.PathValues[p.Name] = v
		case openapi3.ParameterInQuery:
			r.Query = append(r.Query, Pair{p.Name, v})
		case openapi3.ParameterInHeader:
			r.Header = append(r.Header, Pair{p.Name, v})
		}
	}
	if op.Body != nil {
		r.Body, r.HasBody = g.value(op.Body, 0), true
	}
	return r
}

// fromPool is a value for path parameter name of op: the id a POST to the
// parameter's collection answered (/things/{thingId} after POST /things,
// /things/{t}/parts/{p} after POST /things/{t}/parts), else the last value
// of a response field of the same name.
func (g *generator) fromPool(op *operation, name string) (string, bool) {
	if i := strings.Index(op.Path, "/{"+name+"}"); i >= 0 {
		// The collection's POST answered a field of the parameter's own
		// name ({name} after {"id": 3, "name": "shop"}): that one.
		if v, ok := g.pool[op.Path[:i]+"#"+strings.ToLower(name)]; ok {
			return v, true
		}
		if v, ok := g.pool[op.Path[:i]+"#id"]; ok {
			return v, true
		}
	}
	v, ok := g.pool[strings.ToLower(name)]
	return v, ok
}

// remember keeps the scalar fields of a JSON object response for later
// path parameters.
func (g *generator) remember(op *operation, body any) {
	m, ok := body.(map[string]any)
	if !ok {
		return
	}
	for k, v := range m {
		s := scalarString(v)
		if s == "" || strings.ContainsAny(s, "/?#") || len(s) > 200 {
			continue
		}
		if _, scalar := v.(map[string]any); scalar {
			continue
		}
		if _, arr := v.([]any); arr {
			continue
		}
		g.pool[strings.ToLower(k)] = s
		if op.Method == http.MethodPost {
			g.pool[op.Path+"#"+strings.ToLower(k)] = s
		}
		if k == "id" || k == "name" {
			if _, have := g.pool[op.Path+"#id"]; !have || k == "id" {
				g.pool[op.Path+"#id"] = s
			}
		}
	}
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprintf("%g", x)
	case int64:
		return fmt.Sprintf("%d", x)
	case int:
		return fmt.Sprintf("%d", x)
	case bool:
		return fmt.Sprintf("%t", x)
	}
	return fmt.Sprint(v)
}

// value returns a value valid for s (as far as formats and patterns
// allow: a pattern without an example gets a plain string).
func (g *generator) value(s *openapi3.Schema, depth int) any {
	if s == nil {
		return "fuzz"
	}
	if depth > maxDepth {
		return nil // a schema that refers to itself
	}
	switch {
	case s.Const != nil:
		return s.Const
	case len(s.Enum) > 0:
		return s.Enum[g.rng.IntN(len(s.Enum))]
	case s.Example != nil:
		return s.Example
	case len(s.Examples) > 0:
		return s.Examples[0]
	case s.Default != nil:
		return s.Default
	case len(s.AllOf) > 0:
		merged := map[string]any{}
		for _, sub := range s.AllOf {
			if m, ok := g.value(schemaOf(sub), depth+1).(map[string]any); ok {
				for k, v := range m {
					merged[k] = v
				}
			}
		}
		return merged
	case len(s.OneOf) > 0:
		return g.value(schemaOf(s.OneOf[0]), depth+1)
	case len(s.AnyOf) > 0:
		return g.value(schemaOf(s.AnyOf[0]), depth+1)
	}
	switch typeOf(s) {
	case "integer":
		n := int64(1)
		if s.Min != nil && float64(n) < *s.Min {
			n = int64(*s.Min)
		}
		if s.Max != nil && float64(n) > *s.Max {
			n = int64(*s.Max)
		}
		return n
	case "number":
		f := 1.5
		if s.Min != nil && f < *s.Min {
			f = *s.Min
		}
		if s.Max != nil && f > *s.Max {
			f = *s.Max
		}
		return f
	case "boolean":
		return true
	case "array":
		n := max(int(s.MinItems), 1)
		if s.MaxItems != nil && uint64(n) > *s.MaxItems {
			n = int(*s.MaxItems)
		}
		if depth > 6 {
			n = int(s.MinItems)
		}
		a := make([]any, 0, n)
		for range n {
			a = append(a, g.value(schemaOf(s.Items), depth+1))
		}
		return a
	case "object":
		m := map[string]any{}
		for _, name := range sortedKeys(s.Properties) {
			p := schemaOf(s.Properties[name])
			if p != nil && p.ReadOnly {
				continue
			}
			if depth > 6 && !slices.Contains(s.Required, name) {
				continue
			}
			m[name] = g.value(p, depth+1)
		}
		return m
	}
	return g.str(s)
}

func (g *generator) str(s *openapi3.Schema) string {
	var v string
	switch s.Format {
	case "email":
		v = "fuzz@example.com"
	case "date-time":
		v = "2026-01-02T03:04:05Z"
	case "date":
		v = "2026-01-02"
	case "uuid":
		v = fmt.Sprintf("%08x-0000-4000-8000-%012x", g.rng.Uint32(), g.rng.Uint64()&0xffffffffffff)
	case "uri", "url":
		v = "https://example.com/fuzz"
	case "ipv4":
		v = "192.0.2.1"
	case "ipv6":
		v = "2001:db8::1"
	case "hostname":
		v = "example.com"
	default:
		v = fmt.Sprintf("fuzz%d", g.rng.IntN(1000))
	}
	for uint64(len(v)) < s.MinLength {
		v += "x"
	}
	if s.MaxLength != nil && uint64(len(v)) > *s.MaxLength {
		v = v[:*s.MaxLength]
	}
	return v
}

func typeOf(s *openapi3.Schema) string {
	if s.Type != nil {
		for _, t := range s.Type.Slice() {
			if t != "null" {
				return t
			}
		}
	}
	if len(s.Properties) > 0 {
		return "object"
	}
	if s.Items != nil {
		return "array"
	}
	return "string"
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
