package fuzz

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// selectOps returns a copy of s with only the operations re matches (by
// operationId, "METHOD /path" or "METHOD /path operationId"; nil matches
// all) and the parameters named
// in pins fixed to their values: a pinned parameter is sent with that
// value in every request and never mutated (a namespace that exists,
// watch=false on a streaming API). secured marks every operation secured.
func (s *Spec) selectOps(re *regexp.Regexp, pins map[string]string, secured bool) (*Spec, error) {
	out := *s
	out.ops, out.byID = nil, map[string]*operation{}
	used := map[string]bool{}
	for _, op := range s.ops {
		key := op.Method + " " + op.Path
		if re != nil && !re.MatchString(op.ID) && !re.MatchString(key) && !re.MatchString(key+" "+op.ID) {
			continue
		}
		c := *op
		c.Secured = c.Secured || secured
		c.Params = slices.Clone(op.Params)
		for i, p := range c.Params {
			if v, ok := pins[p.Name]; ok {
				c.Params[i].Pinned, c.Params[i].Value = true, v
				used[p.Name] = true
			}
		}
		out.ops = append(out.ops, &c)
		out.byID[c.ID] = &c
	}
	if len(out.ops) == 0 {
		return nil, fmt.Errorf("selecting operations: %q matches none of the document's %d", re, len(s.ops))
	}
	var unused []string
	for name := range pins {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		return nil, fmt.Errorf("pinning parameters: no selected operation has a parameter %s", strings.Join(unused, ", "))
	}
	return &out, nil
}
