package fuzz

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// mutation turns a valid request into a boundary or invalid one.
type mutation struct {
	name  string
	apply func(r *Request)
}

// probe is one attack value: as a string for parameters, as JSON for body
// fields.
type probe struct {
	name string
	str  string
	json any
	// types limits the probe to fields of these schema types (nil: any).
	types []string
}

func probes() []probe {
	huge := strings.Repeat("A", hugeLen)
	ps := []probe{
		{name: "huge string", str: huge, json: huge},
		{name: "unicode", str: unicodeProbe, json: unicodeProbe},
		{name: "empty", str: "", json: ""},
		{name: "negative", str: "-1", json: int64(-1), types: []string{"integer", "number", "string"}},
		{name: "overflow", str: overflowNumber, json: json.Number(overflowNumber), types: []string{"integer", "number"}},
		{name: "huge float", str: "1e309", json: json.Number("1e308"), types: []string{"integer", "number"}},
		{name: "path traversal", str: pathTraversal, json: pathTraversal},
		{name: "null", str: "null", json: nil},
	}
	for i, s := range injections {
		ps = append(ps, probe{name: fmt.Sprintf("injection %d", i+1), str: s, json: s})
	}
	return ps
}

// wrongType returns a JSON value of another type than the schema's.
func wrongType(s *openapi3.Schema) any {
	switch typeOf(s) {
	case "string":
		return int64(12345)
	case "object":
		return []any{"fuzz"}
	case "array":
		return map[string]any{"fuzz": 1}
	}
	return "fuzz"
}

// mutations lists every mutation of op's requests, deterministically
// ordered; g gives the valid values of optional parameters.
func mutations(op *operation, g *generator) []mutation {
	var out []mutation
	ps := probes()
	for _, p := range op.Params {
		if p.Pinned {
			continue
		}
		set := func(v string) func(r *Request) {
			return func(r *Request) { r.setParam(p, v) }
		}
		if !p.Required {
			out = append(out, mutation{fmt.Sprintf("%s %s: valid", p.In, p.Name), set(scalarString(g.value(p.Schema, 0)))})
		}
		t := typeOf(p.Schema)
		if t != "string" {
			out = append(out, mutation{fmt.Sprintf("%s %s: wrong type", p.In, p.Name), set("fuzz")})
		}
		for _, pr := range ps {
			if pr.types != nil && !slices.Contains(pr.types, t) {
				continue
			}
			if pr.str == "" && p.In == openapi3.ParameterInPath {
				continue // an empty segment is another route, not this operation
			}
			out = append(out, mutation{fmt.Sprintf("%s %s: %s", p.In, p.Name, pr.name), set(pr.str)})
		}
		if p.Required && p.In != openapi3.ParameterInPath {
			out = append(out, mutation{fmt.Sprintf("%s %s: missing", p.In, p.Name), func(r *Request) { r.dropParam(p) }})
		}
	}
	if op.Body != nil {
		out = append(out, bodyMutations(op.Body, nil, ps)...)
		out = append(out,
			mutation{"body: wrong type", func(r *Request) { r.Body = wrongType(op.Body) }},
			mutation{"body: malformed JSON", func(r *Request) { r.Raw = `{"fuzz":` }},
		)
		if op.BodyRequired {
			out = append(out, mutation{"body: missing", func(r *Request) { r.Body, r.HasBody = nil, false }})
		}
	}
	return out
}

// bodyMutations mutates each property of an object schema, two levels
// deep, at the JSON path prefix.
func bodyMutations(s *openapi3.Schema, prefix []string, ps []probe) []mutation {
	if s == nil || typeOf(s) != "object" || len(prefix) > 1 {
		return nil
	}
	var out []mutation
	label := "body"
	if len(prefix) > 0 {
		label += "." + strings.Join(prefix, ".")
	}
	out = append(out, mutation{label + ": extra field", func(r *Request) {
		if m := objectAt(r.Body, prefix); m != nil {
			m["bulwarkFuzzExtra"] = "fuzz"
		}
	}})
	for _, name := range sortedKeys(s.Properties) {
		ps2 := schemaOf(s.Properties[name])
		if ps2 == nil || ps2.ReadOnly {
			continue
		}
		path := append(slices.Clone(prefix), name)
		field := "body." + strings.Join(path, ".")
		setter := func(v any) func(r *Request) {
			return func(r *Request) {
				if m := objectAt(r.Body, path[:len(path)-1]); m != nil {
					m[name] = v
				}
			}
		}
		t := typeOf(ps2)
		out = append(out, mutation{field + ": wrong type", setter(wrongType(ps2))})
		for _, pr := range ps {
			if pr.types != nil && !slices.Contains(pr.types, t) {
				continue
			}
			out = append(out, mutation{field + ": " + pr.name, setter(pr.json)})
		}
		if slices.Contains(s.Required, name) {
			out = append(out, mutation{field + ": missing", func(r *Request) {
				if m := objectAt(r.Body, path[:len(path)-1]); m != nil {
					delete(m, name)
				}
			}})
		}
		out = append(out, bodyMutations(ps2, path, ps)...)
	}
	return out
}

// objectAt walks a JSON value down the property path; nil when the path
// does not lead to an object.
func objectAt(v any, path []string) map[string]any {
	m, ok := v.(map[string]any)
	for _, k := range path {
		if !ok {
			return nil
		}
		m, ok = m[k].(map[string]any)
	}
	if !ok {
		return nil
	}
	return m
}

func (r *Request) setParam(p param, v string) {
	switch p.In {
	case openapi3.ParameterInPath:
		r.PathValues[p.Name] = v
	case openapi3.ParameterInQuery:
		r.Query = setPair(r.Query, p.Name, v)
	case openapi3.ParameterInHeader:
		r.Header = setPair(r.Header, p.Name, v)
	}
}

func (r *Request) dropParam(p param) {
	drop := func(ps []Pair) []Pair {
		return slices.DeleteFunc(ps, func(q Pair) bool { return q.Name == p.Name })
	}
	switch p.In {
	case openapi3.ParameterInQuery:
		r.Query = drop(r.Query)
	case openapi3.ParameterInHeader:
		r.Header = drop(r.Header)
	}
}

func setPair(ps []Pair, name, v string) []Pair {
	for i := range ps {
		if ps[i].Name == name {
			ps[i].Value = v
			return ps
		}
	}
	return append(ps, Pair{name, v})
}
