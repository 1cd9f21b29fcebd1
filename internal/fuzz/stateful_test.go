package fuzz

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// collections is a server with two collections whose items are both
// addressed as {id}; it records every request to an item.
type collections struct {
	mu   sync.Mutex
	next int
	have map[string]bool
	log  []string
}

func (s *collections) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	coll, id, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if id == "" {
		if r.Method != http.MethodPost {
			http.Error(w, `{"error":"method"}`, http.StatusMethodNotAllowed)
			return
		}
		s.next++
		id := fmt.Sprintf("%c-%d", coll[0], s.next)
		s.have[coll+"/"+id] = true
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"id": id})
		return
	}
	status := http.StatusNotFound
	if s.have[coll+"/"+id] {
		status = http.StatusOK
		if r.Method == http.MethodDelete {
			delete(s.have, coll+"/"+id)
			status = http.StatusNoContent
		}
	}
	s.log = append(s.log, fmt.Sprintf("%s /%s/%s %d", r.Method, coll, id, status))
	w.WriteHeader(status)
}

const collectionsSpec = `
openapi: 3.0.3
info: {title: collections, version: "1"}
paths:
  /things:
    post:
      requestBody: {content: {application/json: {schema: {type: object, properties: {name: {type: string}}}}}}
      responses: {"201": {description: created}}
  /users:
    post:
      requestBody: {content: {application/json: {schema: {type: object, properties: {name: {type: string}}}}}}
      responses: {"201": {description: created}}
  /things/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {responses: {"200": {description: ok}, "404": {description: none}}}
    put: {responses: {"200": {description: ok}, "404": {description: none}}}
    delete: {responses: {"204": {description: gone}, "404": {description: none}}}
  /users/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {responses: {"200": {description: ok}, "404": {description: none}}}
    put: {responses: {"200": {description: ok}, "404": {description: none}}}
    delete: {responses: {"204": {description: gone}, "404": {description: none}}}
`

// Without links, a POST's answered id feeds GET, PUT and DELETE of its own
// collection, though both collections name the parameter {id}.
func TestStatefulSequenceWithoutLinks(t *testing.T) {
	srv := &collections{have: map[string]bool{}}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	spec, err := Parse([]byte(collectionsSpec))
	if err != nil {
		t.Fatal(err)
	}
	// The valid requests only: two POSTs and six item operations.
	if _, err := Run(t.Context(), spec, Options{Target: ts.URL, MaxRequests: 8}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /things/t-1 200", "GET /users/u-2 200",
		"PUT /things/t-1 200", "PUT /users/u-2 200",
		// DELETEs in reverse path order: sub-resources before parents.
		"DELETE /users/u-2 204", "DELETE /things/t-1 204",
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if strings.Join(srv.log, "\n") != strings.Join(want, "\n") {
		t.Fatalf("item requests:\n%s\nwant:\n%s", strings.Join(srv.log, "\n"), strings.Join(want, "\n"))
	}
}

const pets31 = `
openapi: 3.1.0
info: {title: pets, version: "1"}
paths:
  /pets:
    post:
      operationId: createPet
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [kind, name]
              properties:
                kind: {const: pet}
                name: {type: string, examples: [Rex]}
                tag: {type: [string, "null"]}
      responses:
        "201":
          description: created
          content:
            application/json:
              schema:
                type: object
                required: [id, tag]
                properties:
                  id: {type: integer}
                  tag: {type: [string, "null"]}
        "400": {description: bad}
`

// An OpenAPI 3.1 document: const and examples give the valid body, a type
// array with null is read, and responses are validated as JSON Schema
// 2020-12 (a null tag is valid, a string id is not).
func TestOpenAPI31Document(t *testing.T) {
	spec, err := Parse([]byte(pets31))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id string
		want     bool
	}{{"clean", "1", false}, {"string id", `"1"`, true}} {
		var first map[string]any
		var mu sync.Mutex
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body map[string]any
			err := json.NewDecoder(r.Body).Decode(&body)
			mu.Lock()
			if first == nil {
				first = body
			}
			mu.Unlock()
			if err != nil || body["kind"] != "pet" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id": %s, "tag": null}`, tc.id)
		}))
		res, err := Run(t.Context(), spec, Options{Target: ts.URL, MaxRequests: 60})
		ts.Close()
		if err != nil {
			t.Fatal(err)
		}
		if first["kind"] != "pet" || first["name"] != "Rex" {
			t.Errorf("%s: first body %v; want kind pet (const), name Rex (examples)", tc.name, first)
		}
		got := findingOf(res, RuleSchemaMismatch, "createPet") != nil
		if got != tc.want || (!tc.want && len(res.Findings) > 0) {
			t.Errorf("%s: findings %+v; want schema-mismatch %v", tc.name, res.Findings, tc.want)
		}
	}
}
