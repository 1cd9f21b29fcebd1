package fuzz

import (
	"context"
	"errors"
	"slices"
)

// errShrunk ends a shrink whose budget ran out; the best request so far
// stands.
var errShrunk = errors.New("shrink budget used up")

// shrink reduces r to a smaller request that still trips h: it drops
// optional parameters and body fields one at a time, then cuts each long
// string to the shortest prefix that still trips the rule (a binary search,
// so a 10,000-character string costs about 14 requests). It returns the
// smallest request found and the number of reductions kept.
func (c *campaign) shrink(ctx context.Context, op *operation, r Request, cr creds, h hit) (Request, int, error) {
	if c.opts.Shrink < 0 {
		return r, 0, nil
	}
	budget := c.opts.Shrink
	trips := func(cand Request) (bool, error) {
		if budget <= 0 {
			return false, errShrunk
		}
		budget--
		ex, err := c.send(ctx, cand, cr)
		if err != nil || ex == nil {
			return false, err
		}
		if cr != credsConfigured {
			return ex.err == nil && ex.status/100 == 2, nil
		}
		return slices.ContainsFunc(c.chk.check(op, ex), func(g hit) bool { return g.rule == h.rule && g.key == h.key }), nil
	}
	best, steps := r.clone(), 0
	try := func(cand Request) (bool, error) {
		ok, err := trips(cand)
		if ok {
			best, steps = cand, steps+1
		}
		return ok, err
	}
	err := func() error {
		// Optional parameters, one at a time.
		for _, p := range op.Params {
			if p.Required || p.Pinned {
				continue
			}
			cand := best.clone()
			cand.dropParam(p)
			if len(cand.Query) == len(best.Query) && len(cand.Header) == len(best.Header) {
				continue
			}
			if _, err := try(cand); err != nil {
				return err
			}
		}
		// Body fields, one at a time, top level first.
		for _, path := range bodyPaths(best.Body, nil, false) {
			cand := best.clone()
			if !deleteAt(cand.Body, path) {
				continue
			}
			if _, err := try(cand); err != nil {
				return err
			}
		}
		// Long strings, shortest prefix that still trips.
		for name := range best.PathValues {
			if err := cutString(best.PathValues[name], func(s string) (bool, error) {
				cand := best.clone()
				cand.PathValues[name] = s
				return try(cand)
			}); err != nil {
				return err
			}
		}
		for i := range best.Query {
			if err := cutString(best.Query[i].Value, func(s string) (bool, error) {
				cand := best.clone()
				cand.Query[i].Value = s
				return try(cand)
			}); err != nil {
				return err
			}
		}
		for _, path := range bodyPaths(best.Body, nil, true) {
			v, _ := valueAt(best.Body, path)
			s, _ := v.(string)
			if err := cutString(s, func(s string) (bool, error) {
				cand := best.clone()
				setAt(cand.Body, path, s)
				return try(cand)
			}); err != nil {
				return err
			}
		}
		return nil
	}()
	if errors.Is(err, errShrunk) {
		err = nil
	}
	return best, steps, err
}

// cutString finds, by binary search, the shortest prefix of s (in runes)
// for which trips holds; trips keeps the candidates that do. Strings of 16
// runes or fewer are left alone.
func cutString(s string, trips func(string) (bool, error)) error {
	rs := []rune(s)
	if len(rs) <= 16 {
		return nil
	}
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := (lo + hi) / 2
		ok, err := trips(string(rs[:mid]))
		if err != nil {
			return err
		}
		if ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return nil
}

// bodyPaths lists the paths (object keys and array indexes) into a JSON
// value: every member when strings is false, the string leaves when true.
// Parents come before their children.
func bodyPaths(v any, prefix []any, strings bool) [][]any {
	var out [][]any
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			p := append(slices.Clone(prefix), k)
			if _, isStr := x[k].(string); !strings || isStr {
				out = append(out, p)
			}
			out = append(out, bodyPaths(x[k], p, strings)...)
		}
	case []any:
		for i, e := range x {
			p := append(slices.Clone(prefix), i)
			if _, isStr := e.(string); !strings || isStr {
				out = append(out, p)
			}
			out = append(out, bodyPaths(e, p, strings)...)
		}
	}
	return out
}

func valueAt(v any, path []any) (any, bool) {
	for _, k := range path {
		switch x := v.(type) {
		case map[string]any:
			ks, _ := k.(string)
			var ok bool
			if v, ok = x[ks]; !ok {
				return nil, false
			}
		case []any:
			i, _ := k.(int)
			if i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// setAt sets the member at path (which must exist) to val.
func setAt(root any, path []any, val any) {
	parent, ok := valueAt(root, path[:len(path)-1])
	if !ok {
		return
	}
	switch x := parent.(type) {
	case map[string]any:
		ks, _ := path[len(path)-1].(string)
		x[ks] = val
	case []any:
		if i, _ := path[len(path)-1].(int); i < len(x) {
			x[i] = val
		}
	}
}

// deleteAt removes an object member; array elements stay.
func deleteAt(root any, path []any) bool {
	parent, ok := valueAt(root, path[:len(path)-1])
	m, isMap := parent.(map[string]any)
	ks, isKey := path[len(path)-1].(string)
	if !ok || !isMap || !isKey {
		return false
	}
	if _, ok := m[ks]; !ok {
		return false
	}
	delete(m, ks)
	return true
}
