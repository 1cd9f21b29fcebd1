package admission

import (
	"errors"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlMessage turns a yaml.v3 error into "LINE: message".
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	// "line 3: field foo not found in type admission.Config"
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, m, ok := strings.Cut(rest, ": "); ok {
			msg = n + ": " + m
		}
	} else {
		msg = " " + msg
	}
	if i := strings.Index(msg, " in type admission."); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// lineError is a semantic error at a path of mapping keys.
type lineError struct {
	path []string
	msg  string
}

func (e *lineError) Error() string { return strings.Join(e.path, ".") + ": " + e.msg }

func errAt(msg string, path ...string) error { return &lineError{path: path, msg: msg} }

// findLine returns the line of the deepest key of path found in doc.
func findLine(doc *yaml.Node, keys []string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			break
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			break
		}
	}
	return line
}
