package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// apiClient calls h with role tokens.
type apiClient struct {
	t      *testing.T
	h      *Handler
	tokens map[string]string // role -> token; "" -> no token
}

func newAPIClient(t *testing.T) (*apiClient, Store) {
	t.Helper()
	h, st := newTestAPI(t)
	c := &apiClient{t: t, h: h, tokens: map[string]string{}}
	for _, role := range []string{store.RoleViewer, store.RoleOperator, store.RoleAdmin} {
		_, tok, err := st.CreateToken(t.Context(), role, role)
		if err != nil {
			t.Fatal(err)
		}
		c.tokens[role] = tok
	}
	return c, st
}

// do sends the request as role ("" for none) and returns the response.
func (c *apiClient) do(method, path, role, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if tok := c.tokens[role]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	return rec
}

// call is do that checks the status and decodes the body into out (when
// not nil).
func (c *apiClient) call(method, path, role, body string, want int, out any) {
	c.t.Helper()
	rec := c.do(method, path, role, body)
	if rec.Code != want {
		c.t.Fatalf("%s %s as %q: %d %s, want %d", method, path, role, rec.Code, rec.Body, want)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, rec.Body, err)
		}
	}
}

type auditRow struct{ action, object, before, after string }

func auditRows(t *testing.T, st Store) []auditRow {
	t.Helper()
	rows, err := st.DB().QueryContext(t.Context(), `SELECT action, object, before, after FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.action, &r.object, &r.before, &r.after); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// Every mutating application route refuses a missing token (401) and the
// viewer and operator roles (403), and changes nothing then.
func TestServerApplicationRoutesAuth(t *testing.T) {
	c, st := newAPIClient(t)
	body := `{"name":"shop","team":"payments","repositories":["shop/*"]}`
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/api/v1/applications", body},
		{"PUT", "/api/v1/applications/shop", body},
		{"DELETE", "/api/v1/applications/shop", ""},
	} {
		for role, want := range map[string]int{"": 401, "viewer": 403, "operator": 403} {
			if rec := c.do(tc.method, tc.path, role, tc.body); rec.Code != want {
				t.Errorf("%s %s as %q: %d, want %d", tc.method, tc.path, role, rec.Code, want)
			}
		}
	}
	if rec := c.do("POST", "/api/v1/applications", "", body); rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	for _, path := range []string{"/api/v1/applications", "/api/v1/applications/shop", "/api/v1/hygiene/repositories",
		"/api/v1/hygiene/stale", "/api/v1/hygiene/untagged", "/api/v1/hygiene/removal", "/api/v1/revocations"} {
		if rec := c.do("GET", path, "", ""); rec.Code != 401 {
			t.Errorf("GET %s without a token: %d, want 401", path, rec.Code)
		}
	}
	var list struct{ Applications []store.Application }
	c.call("GET", "/api/v1/applications", "viewer", "", 200, &list)
	if len(list.Applications) != 0 {
		t.Errorf("refused calls stored %+v", list.Applications)
	}
	if rows := auditRows(t, st); len(rows) != 0 {
		t.Errorf("refused calls audited: %+v", rows)
	}
}

func TestServerApplicationsCRUD(t *testing.T) {
	c, st := newAPIClient(t)
	var created store.Application
	c.call("POST", "/api/v1/applications", "admin",
		`{"name":"shop","team":"payments","contact":"pay@example.com","repositories":["shop/*"]}`, 201, &created)
	if created.Name != "shop" || created.Lifecycle != store.LifecycleActive || created.Team != "payments" || created.ID == 0 {
		t.Errorf("created = %+v", created)
	}
	c.call("POST", "/api/v1/applications", "admin", `{"name":"shop","repositories":["x"]}`, 409, nil)
	for _, bad := range []string{
		`{"name":"bad/name","repositories":["x"]}`,
		`{"name":"a","lifecycle":"retired","repositories":["x"]}`,
		`{"name":"a"}`,
		`{"name":"a","repositories":["x["]}`,
		`{"name":"a","repositories":["x"],"owner":"unknown field"}`,
		`not json`,
	} {
		rec := c.do("POST", "/api/v1/applications", "admin", bad)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("POST %s: %d %s, want 400", bad, rec.Code, rec.Body)
		}
	}
	c.call("PUT", "/api/v1/applications/shop", "admin", `{"name":"other","repositories":["x"]}`, 400, nil)

	var got store.Application
	c.call("GET", "/api/v1/applications/shop", "viewer", "", 200, &got)
	if got.Contact != "pay@example.com" || len(got.Repositories) != 1 {
		t.Errorf("GET = %+v", got)
	}
	c.call("GET", "/api/v1/applications/none", "viewer", "", 404, nil)

	var replaced store.Application
	c.call("PUT", "/api/v1/applications/shop", "admin",
		`{"team":"checkout","lifecycle":"end-of-life","repositories":["shop/**"],"labels":{"app":"shop"}}`, 200, &replaced)
	if replaced.ID != created.ID || replaced.Lifecycle != store.LifecycleEndOfLife || replaced.Labels["app"] != "shop" || replaced.Contact != "" {
		t.Errorf("replaced = %+v", replaced)
	}
	c.call("PUT", "/api/v1/applications/billing", "admin", `{"labels":{"team":"billing"}}`, 201, nil)

	var list struct{ Applications []store.Application }
	c.call("GET", "/api/v1/applications", "viewer", "", 200, &list)
	if len(list.Applications) != 2 || list.Applications[0].Name != "billing" || list.Applications[1].Name != "shop" {
		t.Errorf("list = %+v", list.Applications)
	}

	c.call("DELETE", "/api/v1/applications/billing", "admin", "", 204, nil)
	c.call("DELETE", "/api/v1/applications/billing", "admin", "", 404, nil)
	c.call("GET", "/api/v1/applications/billing", "viewer", "", 404, nil)

	// Four mutations, each audited with the state before and after.
	rows := auditRows(t, st)
	if len(rows) != 4 {
		t.Fatalf("audit = %+v, want 4 entries", rows)
	}
	want := []struct{ action, object string }{
		{"application.put", "application:shop"}, {"application.put", "application:shop"},
		{"application.put", "application:billing"}, {"application.delete", "application:billing"},
	}
	for i, w := range want {
		if rows[i].action != w.action || rows[i].object != w.object {
			t.Errorf("audit %d = %s %s, want %s %s", i, rows[i].action, rows[i].object, w.action, w.object)
		}
	}
	var before, after store.Application
	if rows[0].before != "" || json.Unmarshal([]byte(rows[0].after), &after) != nil || after.Team != "payments" {
		t.Errorf("create entry = %+v", rows[0])
	}
	if json.Unmarshal([]byte(rows[1].before), &before) != nil || json.Unmarshal([]byte(rows[1].after), &after) != nil ||
		before.Lifecycle != store.LifecycleActive || after.Lifecycle != store.LifecycleEndOfLife {
		t.Errorf("replace entry = %+v", rows[1])
	}
	if rows[3].before == "" || rows[3].after != "" {
		t.Errorf("delete entry = %+v", rows[3])
	}
	if rep, err := audit.Verify(t.Context(), st.DB()); err != nil || !rep.OK {
		t.Errorf("audit.Verify = %+v, %v", rep, err)
	}
}
