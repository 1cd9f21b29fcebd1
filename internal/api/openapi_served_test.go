package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The served document is a valid OpenAPI document in which every
// operation that needs a token declares 429 (the per-token rate limit),
// and the public ones do not.
func TestServedOpenAPIDeclaresRateLimit(t *testing.T) {
	h, _ := newTestAPI(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("openapi.json: %d", rec.Code)
	}
	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("the served document is not valid: %v", err)
	}
	secured, public := 0, 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			has := op.Responses.Status(http.StatusTooManyRequests) != nil
			switch {
			case op.Security != nil && len(*op.Security) > 0:
				secured++
				if !has {
					t.Errorf("%s %s needs a token but does not declare 429", method, path)
				}
			case has:
				t.Errorf("%s %s is public but declares 429", method, path)
			default:
				public++
			}
		}
	}
	if secured < 40 || public < 3 {
		t.Fatalf("%d secured and %d public operations; the document was not read", secured, public)
	}
}
