package fuzz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"
)

// MaxDocumentSize bounds the OpenAPI document read.
const MaxDocumentSize = 32 << 20

// ErrDocument is wrapped by every error about the OpenAPI document itself.
var ErrDocument = errors.New("unusable OpenAPI document")

// Spec is an OpenAPI document reduced to what the fuzzer needs.
type Spec struct {
	// Hosts are the host[:port] of the document's servers.
	Hosts []string
	// BasePath is the path of the first server URL ("" for "/").
	BasePath string
	ops      []*operation
	byID     map[string]*operation
	// schemaOpts select JSON Schema 2020-12 for OpenAPI 3.1 documents.
	schemaOpts []openapi3.SchemaValidationOption
	// public are the data-class values the document itself holds (its
	// examples): a response that repeats them leaks nothing.
	public []string
}

// Operations returns the operations' ids ("METHOD /path" where the
// document gives none), in the order the campaign visits them.
func (s *Spec) Operations() []string {
	out := make([]string, len(s.ops))
	for i, op := range s.ops {
		out[i] = op.ID
	}
	return out
}

type operation struct {
	ID, Method, Path string
	Params           []param
	// Body is the application/json request body's schema, nil for none.
	Body         *openapi3.Schema
	BodyRequired bool
	// BodyType is the body's media type when it is not JSON ("" for JSON).
	BodyType  string
	Responses *openapi3.Responses
	// Secured: the document requires credentials for the operation.
	Secured bool
	// Classes are the data classes the operation may return
	// (x-data-classes, plus --grant).
	Classes []string
}

type param struct {
	Name, In string
	Required bool
	Schema   *openapi3.Schema
	// Pinned parameters always carry Value and are never mutated.
	Pinned bool
	Value  string
}

// Load reads an OpenAPI document from a file or an http(s) URL.
func Load(ctx context.Context, src string, client *http.Client) (*Spec, error) {
	var data []byte
	if u, err := url.Parse(src); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, fmt.Errorf("fetching OpenAPI document %q: %w", src, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching OpenAPI document %q: %w", src, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching OpenAPI document %q: %s", src, resp.Status)
		}
		data, err = readLimited(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("fetching OpenAPI document %q: %w", src, err)
		}
	} else {
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("reading OpenAPI document %q: %w", src, err)
		}
		defer f.Close()
		if data, err = readLimited(f); err != nil {
			return nil, fmt.Errorf("reading OpenAPI document %q: %w", src, err)
		}
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("reading OpenAPI document %q: %w", src, err)
	}
	return s, nil
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrDocument, MaxDocumentSize)
	}
	return b, nil
}

// Parse reads an OpenAPI 3.0/3.1 or Swagger 2.0 document, JSON or YAML.
// External references are refused.
func Parse(data []byte) (*Spec, error) {
	var head struct {
		Swagger string `yaml:"swagger"`
		OpenAPI string `yaml:"openapi"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDocument, err)
	}
	var doc *openapi3.T
	switch {
	case strings.HasPrefix(head.Swagger, "2."):
		js, err := toJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDocument, err)
		}
		var d2 openapi2.T
		if err := json.Unmarshal(js, &d2); err != nil {
			return nil, fmt.Errorf("%w: swagger 2.0: %w", ErrDocument, err)
		}
		if doc, err = openapi2conv.ToV3(&d2); err != nil {
			return nil, fmt.Errorf("%w: converting swagger 2.0: %w", ErrDocument, err)
		}
	case strings.HasPrefix(head.OpenAPI, "3."):
		loader := openapi3.NewLoader()
		loader.IsExternalRefsAllowed = false
		var err error
		if doc, err = loader.LoadFromData(data); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDocument, err)
		}
	default:
		return nil, fmt.Errorf("%w: neither \"openapi: 3.x\" nor \"swagger: 2.0\"", ErrDocument)
	}
	if doc.Paths == nil || doc.Paths.Len() == 0 {
		return nil, fmt.Errorf("%w: no paths", ErrDocument)
	}
	s, err := fromDoc(doc)
	if err != nil {
		return nil, err
	}
	for _, d := range findDataClasses(data) {
		s.public = append(s.public, d.value)
	}
	return s, nil
}

// toJSON turns a YAML (or JSON) document into JSON.
func toJSON(data []byte) ([]byte, error) {
	if b := bytes.TrimSpace(data); len(b) > 0 && b[0] == '{' {
		return data, nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func fromDoc(doc *openapi3.T) (*Spec, error) {
	s := &Spec{byID: map[string]*operation{}}
	if strings.HasPrefix(doc.OpenAPI, "3.1") {
		s.schemaOpts = []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020()}
	}
	for i, srv := range doc.Servers {
		u, err := url.Parse(srv.URL)
		if err != nil || strings.Contains(srv.URL, "{") {
			continue // templated server URLs are not hosts we can name
		}
		if u.Host != "" {
			s.Hosts = append(s.Hosts, u.Host)
		}
		if i == 0 {
			s.BasePath = strings.TrimSuffix(u.Path, "/")
		}
	}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		if item == nil {
			continue
		}
		for method, o := range item.Operations() {
			op := &operation{ID: o.OperationID, Method: strings.ToUpper(method), Path: path, Responses: o.Responses}
			if op.ID == "" {
				op.ID = op.Method + " " + path
			}
			if _, dup := s.byID[op.ID]; dup {
				return nil, fmt.Errorf("%w: operationId %q twice", ErrDocument, op.ID)
			}
			op.Params = params(item.Parameters, o.Parameters)
			if o.RequestBody != nil && o.RequestBody.Value != nil {
				rb := o.RequestBody.Value
				op.BodyRequired = rb.Required
				if mt := rb.Content.Get("application/json"); mt != nil && mt.Schema != nil {
					op.Body = schemaOf(mt.Schema)
				} else if mt == nil {
					for ct := range rb.Content {
						op.BodyType = ct
						break
					}
				}
			}
			sec := doc.Security
			if o.Security != nil {
				sec = *o.Security
			}
			op.Secured = len(sec) > 0 && !slices.ContainsFunc(sec, func(r openapi3.SecurityRequirement) bool { return len(r) == 0 })
			op.Classes = extensionStrings(o.Extensions["x-data-classes"])
			s.ops = append(s.ops, op)
			s.byID[op.ID] = op
		}
	}
	slices.SortStableFunc(s.ops, func(a, b *operation) int {
		if c := methodRank(a.Method) - methodRank(b.Method); c != 0 {
			return c
		}
		if a.Method == http.MethodDelete {
			return strings.Compare(b.Path, a.Path) // sub-resources before their parents
		}
		return strings.Compare(a.Path, b.Path)
	})
	return s, nil
}

// methodRank orders operations so that resources are created before they
// are read, changed and, last, deleted.
func methodRank(m string) int {
	switch m {
	case http.MethodPost:
		return 0
	case http.MethodGet, http.MethodHead:
		return 1
	case http.MethodPut, http.MethodPatch:
		return 2
	case http.MethodDelete:
		return 4
	}
	return 3
}

// params merges path-item and operation parameters (the operation's win)
// and drops cookie parameters.
func params(item, op openapi3.Parameters) []param {
	var out []param
	add := func(ps openapi3.Parameters) {
		for _, pr := range ps {
			if pr == nil || pr.Value == nil {
				continue
			}
			p := pr.Value
			if p.In == "" || p.In == openapi3.ParameterInCookie {
				continue
			}
			np := param{Name: p.Name, In: p.In, Required: p.Required || p.In == openapi3.ParameterInPath}
			np.Schema = schemaOf(p.Schema)
			if np.Schema == nil {
				np.Schema = openapi3.NewStringSchema()
			}
			if i := slices.IndexFunc(out, func(q param) bool { return q.Name == p.Name && q.In == p.In }); i >= 0 {
				out[i] = np
			} else {
				out = append(out, np)
			}
		}
	}
	add(item)
	add(op)
	return out
}

func extensionStrings(v any) []string {
	switch x := v.(type) {
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return []string{x}
	}
	return nil
}

// declared returns the response the document declares for status: the
// exact code, then the nXX range, then default; nil when none.
func (op *operation) declared(status int) *openapi3.Response {
	if op.Responses == nil {
		return nil
	}
	if r := op.Responses.Status(status); r != nil && r.Value != nil {
		return r.Value
	}
	if r := op.Responses.Value(fmt.Sprintf("%dXX", status/100)); r != nil && r.Value != nil {
		return r.Value
	}
	if r := op.Responses.Default(); r != nil && r.Value != nil {
		return r.Value
	}
	return nil
}

// schemaOf is the schema a reference resolves to; nil for none.
func schemaOf(r *openapi3.SchemaRef) *openapi3.Schema {
	if r == nil {
		return nil
	}
	return r.Value
}
