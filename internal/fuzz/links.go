package fuzz

import (
	"context"
	"fmt"
	"strings"
)

// follow sends the requests the document links from op's response, and
// remembers their answers.
func (c *campaign) follow(ctx context.Context, op *operation, r Request, ex *exchange) error {
	if ex == nil || ex.err != nil {
		return nil
	}
	decl := op.declared(ex.status)
	if decl == nil || len(decl.Links) == 0 {
		return nil
	}
	body, _ := decodeJSON(ex.body)
	for _, name := range sortedKeys(decl.Links) {
		l := decl.Links[name]
		if l == nil || l.Value == nil {
			continue
		}
		target := c.spec.byID[l.Value.OperationID]
		if target == nil {
			continue
		}
		lr := c.gen.valid(target)
		for pname, expr := range l.Value.Parameters {
			v, ok := evalLink(expr, r, body)
			if !ok {
				continue
			}
			in, n, _ := strings.Cut(pname, ".")
			if n == "" {
				n, in = in, ""
			}
			for _, p := range target.Params {
				if p.Name == n && (in == "" || in == p.In) {
					lr.setParam(p, v)
				}
			}
		}
		lr.Mutation = "link " + name + " from " + op.ID
		if _, err := c.do(ctx, target, lr, credsConfigured); err != nil {
			return err
		}
	}
	return nil
}

// evalLink evaluates a link parameter: $response.body#/pointer,
// $request.path.name, $request.query.name, or a constant.
func evalLink(expr any, r Request, body any) (string, bool) {
	s, ok := expr.(string)
	if !ok {
		return scalarString(expr), expr != nil
	}
	switch {
	case strings.HasPrefix(s, "$response.body#"):
		v, ok := pointer(body, strings.TrimPrefix(s, "$response.body#"))
		return scalarString(v), ok
	case strings.HasPrefix(s, "$request.path."):
		v, ok := r.PathValues[strings.TrimPrefix(s, "$request.path.")]
		return v, ok
	case strings.HasPrefix(s, "$request.query."):
		n := strings.TrimPrefix(s, "$request.query.")
		for _, q := range r.Query {
			if q.Name == n {
				return q.Value, true
			}
		}
		return "", false
	case strings.HasPrefix(s, "$"):
		return "", false
	}
	return s, true
}

// pointer resolves a JSON pointer (RFC 6901).
func pointer(v any, p string) (any, bool) {
	if p == "" {
		return v, true
	}
	if !strings.HasPrefix(p, "/") {
		return nil, false
	}
	for _, tok := range strings.Split(p[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[tok]; !ok {
				return nil, false
			}
		case []any:
			var i int
			if _, err := fmt.Sscanf(tok, "%d", &i); err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}
