package fuzz_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fuzz"
	"github.com/bulwark-sec/bulwark/internal/server"
	"github.com/bulwark-sec/bulwark/internal/servertest"
)

// TestFuzzBulwarkAPI fuzzes Bulwark's own server from the document it
// serves, as CI does, and requires zero findings.
func TestFuzzBulwarkAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	d, err := name.NewDigest("registry.example/app@sha256:" + "ab12000000000000000000000000000000000000000000000000000000000000"[:64])
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{WatchInterval: time.Hour, APILimits: api.Limits{Rate: -1}}, servertest.Image{Digest: d, Tag: "1", Certified: true})
	spec, err := fuzz.Load(t.Context(), srv.URL+"/api/v1/openapi.json", http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	res, err := fuzz.Run(t.Context(), spec, fuzz.Options{
		Target:      srv.URL,
		Auth:        []fuzz.Pair{{"Authorization", "Bearer " + srv.Admin}},
		Seed:        1,
		MaxRequests: 3000,
		Duration:    40 * time.Second,
		Slow:        10 * time.Second, // a loaded 2-core CI machine
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests to %d operations in %.1f s, stopped: %s", res.Requests, res.Operations, res.Seconds, res.Stop)
	// Every route is in the document (api's TestServerOpenAPIMatchesRoutes),
	// and every operation of the document must have been answered past its
	// authentication (not only 401s and 429s); one that takes parameters
	// or a body, several times (its mutations).
	past := map[string]int{}
	for _, op := range spec.Operations() {
		for status, n := range res.Coverage[op] {
			if status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
				past[op] += n
			}
		}
		if past[op] == 0 {
			t.Errorf("operation %s was not answered past authentication (%v); want it fuzzed", op, res.Coverage[op])
		}
	}
	for _, op := range spec.Operations() {
		if past[op] > 1 {
			continue
		}
		if method, path, _ := strings.Cut(op, " "); method != http.MethodGet || strings.Contains(path, "{") {
			t.Errorf("operation %s got %d answers past authentication; want its mutations too", op, past[op])
		}
	}
	var no2xx []string
	for _, op := range spec.Operations() {
		ok := false
		for status := range res.Coverage[op] {
			ok = ok || status/100 == 2
		}
		if !ok {
			no2xx = append(no2xx, op)
		}
	}
	t.Logf("operations never answered 2xx (only their error paths were fuzzed): %v", no2xx)
	seen := map[string]bool{}
	for _, f := range res.Findings {
		if why, ok := knownBulwark[f.Rule+" "+f.Operation]; ok {
			seen[f.Rule+" "+f.Operation] = true
			t.Logf("known (docs/fuzz.md): %s %s: %s", f.Rule, f.Operation, why)
			continue
		}
		t.Errorf("%s %s: %s\n  %s", f.Rule, f.Operation, f.Message, trimCurl(f.Curl))
	}
	for k := range knownBulwark {
		if !seen[k] {
			t.Logf("known finding %q no longer seen: remove it from knownBulwark and docs/fuzz.md", k)
		}
	}
}

// knownBulwark are the findings on Bulwark's own API that docs/fuzz.md
// documents as open, by rule and operation. Every other finding fails.
var knownBulwark = map[string]string{}

func trimCurl(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}
