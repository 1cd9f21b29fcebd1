package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Every route that takes a body refuses one that is not exactly one JSON
// object of known fields: two objects (the first was acted on: a scan was
// queued), trailing data, null, an array, an empty body, an unknown field.
// Nothing is queued or audited.
func TestServerStrictBodies(t *testing.T) {
	h, st := newTestAPI(t)
	_, admin, err := st.CreateToken(t.Context(), "admin", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]string{
		"/api/v1/scans":                  `{"image":"example.com/a:1"}`,
		"/api/v1/tokens":                 `{"name":"n","role":"viewer"}`,
		"/api/v1/registries":             `{"name":"r","url":"https://r.example"}`,
		"/api/v1/notifications/registry": `{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"a","digest":"sha256:` + strings.Repeat("a", 64) + `"},"request":{"host":"r.example"}}]}`,
		"/api/v1/applications":           `{"name":"a","team":"t"}`,
	}
	for path, valid := range routes {
		bodies := map[string]string{
			"two objects":   valid + valid,
			"trailing data": valid + ` x`,
			"null":          `null`,
			"array":         `[` + valid + `]`,
			"empty":         ``,
			"string":        `"x"`,
			"too large":     `{"name":"` + strings.Repeat("a", maxBody) + `"}`,
		}
		if path != "/api/v1/notifications/registry" { // distribution adds envelope fields; 1 MiB
			bodies["unknown field"] = strings.Replace(valid, "{", `{"surprise":1,`, 1)
		} else {
			delete(bodies, "too large")
		}
		for what, body := range bodies {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+admin)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("POST %s with %s: %d %s, want 400", path, what, rec.Code, rec.Body)
			}
		}
	}
	rep, err := audit.Verify(t.Context(), st.DB())
	if err != nil || rep.Entries != 0 {
		t.Errorf("refused bodies changed something: %+v %v", rep, err)
	}
	if jobs, err := st.(*store.Store).ListJobs(t.Context(), JobScan, "", 10); err != nil || len(jobs) != 0 {
		t.Errorf("refused bodies queued %d jobs (%v)", len(jobs), err)
	}
}
