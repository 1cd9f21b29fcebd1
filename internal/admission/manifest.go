package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Manifest is one Kubernetes object read from a YAML file.
type Manifest struct {
	File string
	// Index is the document's position in the file, from 0; Line its
	// first line.
	Index int
	Line  int
	Kind  string
	Name  string
	// Object is set for the kinds the webhook evaluates.
	Object *Object

	node *yaml.Node
}

// Position returns the line and column (from 1) of what the JSON pointer
// (a Finding's Path) names in the manifest: the field itself, or the
// nearest enclosing one present when the field is missing (an unset
// allowPrivilegeEscalation is reported at its securityContext, or at the
// container). Without a pointer, or for a manifest not read from YAML,
// it is the document's first line.
func (m Manifest) Position(pointer string) (line, col int) {
	n := m.node
	if n == nil {
		return m.Line, 0
	}
	line, col = n.Line, n.Column
	if pointer == "" || pointer[0] != '/' {
		return line, col
	}
	unescape := strings.NewReplacer("~1", "/", "~0", "~")
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = unescape.Replace(tok)
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					line, col = n.Content[i].Line, n.Content[i].Column
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line, col = next.Line, next.Column
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line, col
}

// ManifestError is bad input in a manifest file: not YAML, or an object
// that does not decode as its kind.
type ManifestError struct {
	File  string
	Index int
	Line  int
	Err   error
}

func (e *ManifestError) Error() string {
	return fmt.Sprintf("%s:%d: document %d: %v", e.File, e.Line, e.Index+1, e.Err) // counted from 1, as editors do
}

func (e *ManifestError) Unwrap() error { return e.Err }

// DecodeManifests reads every document of a multi-document YAML file
// (and the items of a kind: List). Documents of other kinds are returned
// without an Object; empty documents are skipped.
func DecodeManifests(file string, data []byte) ([]Manifest, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Manifest
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, &ManifestError{File: file, Index: i, Line: lineOf(err), Err: fmt.Errorf("not YAML: %s", plainYAMLError(err))}
		}
		if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null" {
			continue
		}
		ms, err := decodeNode(file, i, n.Content[0])
		if err != nil {
			return out, err
		}
		out = append(out, ms...)
	}
}

func decodeNode(file string, index int, n *yaml.Node) ([]Manifest, error) {
	fail := func(err error) error { return &ManifestError{File: file, Index: index, Line: n.Line, Err: err} }
	if n.Kind != yaml.MappingNode {
		return nil, fail(errors.New("not a Kubernetes object (want a mapping with apiVersion and kind)"))
	}
	var head struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Items []yaml.Node `yaml:"items"`
	}
	if err := n.Decode(&head); err != nil {
		return nil, fail(fmt.Errorf("reading kind: %s", yamlMessage(err)))
	}
	if head.Kind == "" {
		return nil, fail(errors.New("no kind"))
	}
	if head.Kind == "List" || len(head.Items) > 0 && len(head.Kind) > 4 && head.Kind[len(head.Kind)-4:] == "List" {
		var out []Manifest
		for i := range head.Items {
			ms, err := decodeNode(file, index, &head.Items[i])
			if err != nil {
				return nil, err
			}
			out = append(out, ms...)
		}
		return out, nil
	}
	m := Manifest{File: file, Index: index, Line: n.Line, Kind: head.Kind, Name: head.Metadata.Name, node: n}
	if !Supported(head.Kind) {
		return []Manifest{m}, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fail(fmt.Errorf("decoding %s: %s", head.Kind, yamlMessage(err)))
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fail(fmt.Errorf("decoding %s: %v", head.Kind, err))
	}
	o, err := DecodeObject(head.Kind, raw)
	if err != nil {
		return nil, fail(err)
	}
	m.Object = o
	return []Manifest{m}, nil
}

// lineOf finds "line N" in a yaml.v3 error.
func lineOf(err error) int {
	var n int
	msg := err.Error()
	for i := 0; i+5 < len(msg); i++ {
		if msg[i:i+5] == "line " {
			if _, e := fmt.Sscanf(msg[i+5:], "%d", &n); e == nil {
				return n
			}
		}
	}
	return 0
}

// plainYAMLError is a yaml.v3 syntax error without its "yaml: line N: "
// prefix (the line is reported separately).
func plainYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, m, ok := strings.Cut(rest, ": "); ok {
			return m
		}
	}
	return msg
}
