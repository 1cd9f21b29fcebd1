package fuzz

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
)

func TestSameSeedSameCampaign(t *testing.T) {
	run := func() (*Result, string) {
		_, target := startPlanted(t, true)
		res := fuzzPlanted(t, target, Options{Seed: 42, MaxRequests: 600})
		var b strings.Builder
		for _, f := range res.Findings {
			b.WriteString(f.Rule + " " + f.Operation + " " + strings.ReplaceAll(f.Curl, target, "TARGET") + "\n")
		}
		return res, b.String()
	}
	r1, a := run()
	r2, b := run()
	if a != b || r1.Requests != r2.Requests {
		t.Fatalf("two runs with seed 42 differ:\n%s\n---\n%s", a, b)
	}
	_, target := startPlanted(t, true)
	r3 := fuzzPlanted(t, target, Options{Seed: 43, MaxRequests: 600})
	if len(r3.Findings) == 0 {
		t.Fatal("seed 43 found nothing")
	}
}

func TestBudgets(t *testing.T) {
	_, target := startPlanted(t, false)
	res := fuzzPlanted(t, target, Options{Seed: 1, MaxRequests: 50})
	if res.Requests != 50 || res.Stop != "max-requests" {
		t.Errorf("max-requests 50: %d requests, stop %q", res.Requests, res.Stop)
	}
	t0 := time.Now()
	res = fuzzPlanted(t, target, Options{Seed: 1, MaxRequests: 100000, Duration: 500 * time.Millisecond, Rate: 20})
	if el := time.Since(t0); el > 3*time.Second || res.Stop != "duration" {
		t.Errorf("duration 0.5 s: took %v, stop %q", el, res.Stop)
	}
	if res.Requests < 5 || res.Requests > 12 {
		t.Errorf("rate 20/s for 0.5 s: %d requests, want about 10", res.Requests)
	}
}

func TestTargetHosts(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost/api", "http://[::1]:9/", "https://api.example.com/v1"} {
		if _, err := CheckTarget(ok, []string{"api.example.com"}, nil); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	_, err := CheckTarget("http://10.0.0.8:8080", []string{"api.example.com"}, nil)
	if !errors.Is(err, ErrHostNotAllowed) {
		t.Errorf("10.0.0.8: err = %v, want ErrHostNotAllowed", err)
	}
	if _, err := CheckTarget("http://10.0.0.8:8080", nil, []string{"10.0.0.8"}); err != nil {
		t.Errorf("allowed 10.0.0.8: %v", err)
	}
	for _, bad := range []string{"ftp://127.0.0.1/", "127.0.0.1:80", "http://"} {
		if _, err := CheckTarget(bad, nil, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	spec, err := Parse([]byte(fuzztest.Spec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), spec, Options{Target: "http://192.0.2.1/"}); !errors.Is(err, ErrHostNotAllowed) {
		t.Errorf("Run on 192.0.2.1: %v", err)
	}
}

const swagger2 = `
swagger: "2.0"
info: {title: planted, version: "1"}
securityDefinitions:
  bearer: {type: apiKey, in: header, name: Authorization}
security: [{bearer: []}]
paths:
  /items:
    post:
      operationId: createItem
      consumes: [application/json]
      produces: [application/json]
      parameters:
        - in: body
          name: item
          required: true
          schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses:
        "201": {description: created}
        "400": {description: bad}
        "401": {description: unauthorized}
  /admin/users:
    get:
      operationId: listAdminUsers
      responses:
        "200": {description: users}
        "401": {description: unauthorized}
`

func TestSwagger2Document(t *testing.T) {
	spec, err := Parse([]byte(swagger2))
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Operations(); !slices.Equal(got, []string{"createItem", "listAdminUsers"}) {
		t.Fatalf("operations %v", got)
	}
	_, target := startPlanted(t, true)
	res, err := Run(t.Context(), spec, Options{Target: target, Auth: plantedAuth, Seed: 1, MaxRequests: 300})
	if err != nil {
		t.Fatal(err)
	}
	if findingOf(res, RuleServerError, "createItem") == nil || findingOf(res, RuleAuthBypass, "listAdminUsers") == nil {
		t.Fatalf("findings %+v: want server-error on createItem and auth-bypass on listAdminUsers", res.Findings)
	}
}

func TestBadDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":    "",
		"not api":  `{"hello": "world"}`,
		"no paths": `{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {}}`,
		"garbage":  "\x00\x01{{{",
		"external": `{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {"$ref": "http://127.0.0.1:1/r.json"}}}}}}`,
	} {
		if _, err := Parse([]byte(doc)); !errors.Is(err, ErrDocument) {
			t.Errorf("%s: err = %v, want ErrDocument", name, err)
		}
	}
}

// A granted class is not reported; values the document itself holds (its
// examples) are not leaks either.
func TestDataClassGrants(t *testing.T) {
	_, target := startPlanted(t, true)
	res := fuzzPlanted(t, target, Options{Seed: 7, MaxRequests: 300, Grants: map[string][]string{"createItem": {ClassEmail}, "getItem": {ClassEmail}}})
	for _, f := range res.Findings {
		if f.Rule == RuleDataClass {
			t.Errorf("granted class reported: %s %s", f.Operation, f.Message)
		}
	}
	spec, err := Parse([]byte(strings.Replace(fuzztest.Spec, `"note": {"type": "string"}, "owner": {"type": "string"}`,
		`"note": {"type": "string"}, "owner": {"type": "string", "example": "alice@corp.example"}`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	res, err = Run(t.Context(), spec, Options{Target: target, Auth: plantedAuth, Seed: 7, MaxRequests: 300})
	if err != nil {
		t.Fatal(err)
	}
	if f := findingOf(res, RuleDataClass, "getItem"); f != nil {
		t.Errorf("the document's own example reported: %s", f.Message)
	}
}

func TestFindDataClasses(t *testing.T) {
	body := `{"mail":"bob.smith@shop.example","card":"4111 1111 1111 1111","bad":"4111111111111112",
	"ts":1733150000123,"ssn":"536-90-4399","never":"666-12-3456","zeros":"0000000000000000"}`
	got := findDataClasses([]byte(body))
	want := []dataValue{{ClassEmail, "bob.smith@shop.example"}, {ClassCardNumber, "4111 1111 1111 1111"}, {ClassUSSSN, "536-90-4399"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A 429 is the server's rate limit: waited out and retried, not reported
// (before, every operation past the limit was an undeclared-status finding).
func TestRateLimitedServerWaitedOut(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		limited := n%3 == 0
		mu.Unlock()
		if limited {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	spec, err := Parse([]byte(`{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {"/ping": {"get": {"responses": {"200": {"description": "ok"}}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), spec, Options{Target: srv.URL, MaxRequests: 60})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 {
		t.Fatalf("findings %+v", res.Findings)
	}
}

func TestReportFormats(t *testing.T) {
	_, target := startPlanted(t, true)
	res := fuzzPlanted(t, target, Options{Seed: 7, MaxRequests: 400})
	if len(res.Findings) == 0 {
		t.Fatal("no findings")
	}
	var b strings.Builder
	if err := Write(&b, "json", res); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil || len(back.Findings) != len(res.Findings) || back.Findings[0].Curl == "" {
		t.Errorf("json: %v, %d findings", err, len(back.Findings))
	}
	b.Reset()
	if err := Write(&b, "sarif", res); err != nil {
		t.Fatal(err)
	}
	var sarif struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(b.String()), &sarif); err != nil || sarif.Version != "2.1.0" || len(sarif.Runs[0].Results) != len(res.Findings) {
		t.Errorf("sarif: %v %+v", err, sarif)
	}
	b.Reset()
	if err := Write(&b, "junit", res); err != nil {
		t.Fatal(err)
	}
	var ju junitSuites
	if err := xml.Unmarshal([]byte(b.String()), &ju); err != nil || len(ju.Suites) != len(Rules()) {
		t.Fatalf("junit: %v, %d suites", err, len(ju.Suites))
	}
	failures := 0
	for _, s := range ju.Suites {
		failures += s.Failures
	}
	if failures != len(res.Findings) {
		t.Errorf("junit: %d failures, %d findings", failures, len(res.Findings))
	}
	b.Reset()
	if err := Write(&b, "table", res); err != nil || !strings.Contains(b.String(), "curl -sS") || strings.Contains(b.String(), fuzztest.Token) {
		t.Errorf("table: %v\n%s", err, b.String())
	}
	if err := Write(&b, "yaml", res); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestLinkExpressions(t *testing.T) {
	body := map[string]any{"id": json.Number("42"), "a/b": map[string]any{"c~d": []any{"x", "y"}}}
	r := Request{PathValues: map[string]string{"team": "ops"}, Query: []Pair{{"page", "2"}}}
	for expr, want := range map[string]string{
		"$response.body#/id":          "42",
		"$response.body#/a~1b/c~0d/1": "y",
		"$request.path.team":          "ops",
		"$request.query.page":         "2",
		"constant":                    "constant",
	} {
		if got, ok := evalLink(expr, r, body); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", expr, got, ok, want)
		}
	}
	for _, bad := range []string{"$response.body#/missing", "$response.body#/a~1b/c~0d/9", "$response.header.X", "$request.path.none", "$response.body#id"} {
		if got, ok := evalLink(bad, r, body); ok {
			t.Errorf("%s = %q, want no value", bad, got)
		}
	}
}

// The valid GET /items/{itemId} after POST /items asks for the item the
// POST created (the link, and the kept id), so it reaches a real item.
func TestStatefulSequenceReachesCreatedItem(t *testing.T) {
	_, target := startPlanted(t, false)
	spec, err := Parse([]byte(fuzztest.Spec))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	var mu sync.Mutex
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/items/") {
			mu.Lock()
			seen = append(seen, r.URL.Path+" "+resp.Status)
			mu.Unlock()
		}
		return resp, err
	})}
	if _, err := Run(t.Context(), spec, Options{Target: target, Auth: plantedAuth, MaxRequests: 10, Client: client}); err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 || seen[0] != "/items/1 200 OK" || seen[1] != "/items/1 200 OK" {
		t.Fatalf("GETs of items: %v; want the link's and the valid request's /items/1 200", seen)
	}
}
