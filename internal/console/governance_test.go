package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/governance"
)

// reportOf builds the report of flows under the governance package's
// example catalogue.
type reportOf []governance.Flow

func (f reportOf) Report(_ context.Context, regulation string) (governance.Report, error) {
	b, err := os.ReadFile("../governance/testdata/catalogue.yaml")
	if err != nil {
		return governance.Report{}, err
	}
	c, err := governance.Parse(b)
	if err != nil {
		return governance.Report{}, err
	}
	return c.Build(f, nil, regulation, time.Now())
}

// The governance page draws the access graph (a violation in red) and
// lists the access per regulation and class, escaping what agents and
// catalogues wrote.
func TestConsoleGovernance(t *testing.T) {
	st, token := seed(t)
	get := func(h http.Handler, path string) (int, string) {
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(loggedIn(t, h, token))
		rec := serve(h, r)
		return rec.Code, rec.Body.String()
	}
	if _, body := get(newConsole(t, st), "/ui/governance"); !strings.Contains(body, "not enabled") {
		t.Fatalf("disabled: %s", body)
	}
	now := time.Now()
	flows := reportOf{
		{Service: "checkout", Node: "node-eu-1", Container: "c1", Region: "eu-west-1", Destination: "10.1.0.5:5432", Count: 3, First: now, Last: now},
		{Service: "<b>analytics</b>", Node: "node-eu-1", Container: "c2", Region: "eu-west-1", Destination: "10.1.0.5:5432", Count: 1, First: now, Last: now},
	}
	h := New(st, Options{Logger: slog.New(slog.DiscardHandler), Governance: flows})
	code, body := get(h, "/ui/governance?regulation=gdpr")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	for _, want := range []string{"<svg", `stroke="#c0392b"`, `stroke="#2e7d32"`, "customers-db", "checkout", "ungranted", "&lt;b&gt;analytics&lt;/b&gt;", "1 violations"} {
		if !strings.Contains(body, want) {
			t.Errorf("governance page does not show %q", want)
		}
	}
	if strings.Contains(body, "<b>analytics") || strings.Contains(body, "<script") {
		t.Error("unescaped input on the page")
	}
	if code, _ := get(h, "/ui/governance?regulation=sox"); code != 404 {
		t.Errorf("unknown regulation: %d", code)
	}
}
