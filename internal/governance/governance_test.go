package governance

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

func example(t testing.TB) *Catalogue {
	t.Helper()
	c, err := Load("testdata/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func flow(service, node, region, dest string) Flow {
	return Flow{Service: service, Node: node, Container: "c-" + service + "-" + node, Region: region, Destination: dest, Count: 3, First: t0, Last: t0}
}

func TestCatalogue(t *testing.T) {
	c := example(t)
	if rs, ok := c.ClassRegions("pii-eu"); !ok || strings.Join(rs, ",") != "eu-west-1,eu-central-1" {
		t.Fatalf("pii-eu regions = %v %v", rs, ok)
	}
	if rs, ok := c.ClassRegions("pci-pan"); !ok || rs != nil {
		t.Fatalf("pci-pan (no residency) = %v %v", rs, ok)
	}
	if _, ok := c.ClassRegions("nope"); ok {
		t.Fatal("an unknown class is known")
	}
	if !c.Granted("checkout", "pii-eu") || c.Granted("claims", "pii-eu") || c.Granted("", "phi") {
		t.Fatal("grants wrong")
	}
	if c.Retention("phi") != 6*365*24*time.Hour {
		t.Fatalf("phi retention %v", c.Retention("phi"))
	}
	for dest, want := range map[string]string{
		"10.1.0.5:5432": "customers-db", "10.1.0.5:5433": "", "claims.db.internal:5432": "claims-db",
		"CLAIMS.DB.INTERNAL.:5432": "claims-db", "10.9.0.77:443": "cards-vault", "10.9.1.77:443": "",
		"[::ffff:10.1.0.5]:5432": "customers-db", "garbage": "",
	} {
		st, ok := c.StoreAt(dest)
		if st.Name != want || ok != (want != "") {
			t.Errorf("StoreAt(%q) = %q %v, want %q", dest, st.Name, ok, want)
		}
	}
}

func TestCatalogueErrors(t *testing.T) {
	base := "classes: [{name: pii}]\n"
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key":        {base + "regulatons: []\n", "field regulatons not found"},
		"unknown regulation": {base + "regulations: [{name: gpdr, classes: [pii]}]\n", `unknown regulation "gpdr"`},
		"unknown class":      {base + "regulations: [{name: gdpr, classes: [pi]}]\n", `unknown class "pi"`},
		"store class":        {base + "stores: [{name: db, address: 'db:5432', classes: [phi]}]\n", `store db: unknown class "phi"`},
		"grant class":        {base + "applications: [{name: a, classes: [phi]}]\n", `application a: unknown class "phi"`},
		"bad address":        {base + "stores: [{name: db, address: 'db:port', classes: [pii]}]\n", `bad port`},
		"bad region":         {base + "regulations: [{name: gdpr, classes: [pii], regions: ['eu west']}]\n", `region "eu west"`},
		"bad retention":      {base + "regulations: [{name: gdpr, classes: [pii], retention: forever}]\n", `retention "forever"`},
		"two documents":      {base + "---\n" + base, "more than one"},
		"duplicate class":    {"classes: [{name: pii}, {name: pii}]\n", "defined twice"},
		"bad class name":     {"classes: [{name: '../x'}]\n", "class name"},
		"not yaml":           {"{", "invalid"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		// in the file's terms, on one line: no Go type, no line break
		if err != nil && (strings.Contains(err.Error(), " in type ") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s: %q names a Go type or breaks the line", name, err)
		}
	}
}

// TestReport is docs/governance.md's example: a granted service in
// region, an ungranted one, one outside the residency, and a flow to no
// catalogued store.
func TestReport(t *testing.T) {
	c := example(t)
	flows := []Flow{
		flow("checkout", "node-eu-1", "eu-west-1", "10.1.0.5:5432"),
		flow("checkout", "node-eu-1", "eu-west-1", "10.1.0.5:5432"),
		flow("analytics", "node-eu-1", "eu-west-1", "10.1.0.5:5432"),
		flow("checkout", "node-us-1", "us-east-1", "10.1.0.5:5432"),
		flow("claims", "node-us-1", "us-east-1", "claims.db.internal:5432"),
		flow("checkout", "node-eu-1", "eu-west-1", "93.184.216.34:443"),
	}
	r, err := c.Build(flows, []SecretClasses{{Name: "checkout/db", Classes: []string{"pii-eu"}}}, "gdpr", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Sections) != 1 || r.Sections[0].Class != "pii-eu" || r.Flows != 6 || r.Unmatched != 1 {
		t.Fatalf("report = %+v", r)
	}
	s := r.Sections[0]
	if fmt.Sprint(s.Granted, s.Secrets, s.Stores) != "[checkout] [checkout/db] [customers-db]" {
		t.Fatalf("section = %+v", s)
	}
	got := []string{}
	for _, a := range s.Observed {
		got = append(got, fmt.Sprintf("%s@%s:%d:%v:%v", a.Service, a.Region, a.Count, a.Granted, a.InResidency))
	}
	if strings.Join(got, " ") != "analytics@eu-west-1:3:false:true checkout@eu-west-1:6:true:true checkout@us-east-1:3:true:false" {
		t.Fatalf("observed = %v", got)
	}
	kinds := []string{}
	for _, v := range r.Violations {
		kinds = append(kinds, v.Kind+":"+v.Service+"@"+v.Region)
	}
	if strings.Join(kinds, " ") != "residency:checkout@us-east-1 ungranted:analytics@eu-west-1" {
		t.Fatalf("violations = %v", kinds)
	}
	// Every regulation: claims' access to phi is in order.
	all, _ := c.Build(flows, nil, "", t0)
	if len(all.Sections) != 3 || len(all.Violations) != 2 {
		t.Fatalf("all regulations: %d sections, %d violations", len(all.Sections), len(all.Violations))
	}
	if _, err := c.Build(nil, nil, "sox", t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown regulation: %v", err)
	}

	var tbl, js, cs bytes.Buffer
	for f, b := range map[string]*bytes.Buffer{"table": &tbl, "json": &js, "csv": &cs} {
		if err := r.Render(b, f); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(tbl.String(), "UNGRANTED") || !strings.Contains(tbl.String(), "2 violations") {
		t.Fatalf("table:\n%s", tbl.String())
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Violations) != 2 {
		t.Fatalf("json: %v", err)
	}
	rows, err := csv.NewReader(&cs).ReadAll()
	if err != nil || len(rows) != 1+3+1 || rows[0][0] != "regulation" {
		t.Fatalf("csv rows %d: %v %v", len(rows), rows, err)
	}
	if err := r.Render(&tbl, "xml"); err == nil {
		t.Fatal("xml rendered")
	}
	if os.Getenv("GOVERNANCE_PRINT") != "" {
		fmt.Print(tbl.String())
	}
}

func TestCSVDefusesFormulas(t *testing.T) {
	c := example(t)
	r, _ := c.Build([]Flow{flow("=HYPERLINK(\"x\")", "n", "eu-west-1", "10.1.0.5:5432")}, nil, "", t0)
	var b bytes.Buffer
	r.Render(&b, "csv")
	if strings.Contains(b.String(), ",=HYPERLINK") || !strings.Contains(b.String(), "'=HYPERLINK") {
		t.Fatalf("csv:\n%s", b.String())
	}
}

// TestCSVDefusesEveryFormulaStart: as OWASP's CSV-injection guidance
// asks, no cell (nor any part of one a spreadsheet splits off at a
// separator of its locale: , ; tab |) starts a formula, whatever the
// agent reports as a service name: a lone = or @, leading spaces or
// quotes, full-width signs, a tab or CR.
func TestCSVDefusesEveryFormulaStart(t *testing.T) {
	c := example(t)
	for _, name := range []string{"=", "@", "+1", "-1+2", " =cmd|' /C calc'!A0", "\"=x\"", "\t=x", "\r=x",
		"＝HYPERLINK(1)", "＠SUM(1)", "ok;=cmd()", "ok\t@x", "a|+1", "a, -1+1"} {
		r, _ := c.Build([]Flow{flow(name, "n", "eu-west-1", "10.1.0.5:5432")}, nil, "", t0)
		var b bytes.Buffer
		if err := r.Render(&b, "csv"); err != nil {
			t.Fatal(err)
		}
		for _, sep := range []rune{',', ';', '\t', '|'} {
			cells := strings.FieldsFunc(b.String(), func(r rune) bool { return r == sep || r == '\n' })
			for _, cell := range cells {
				if formulaStart(cell) {
					t.Errorf("service %q: a spreadsheet splitting at %q reads the cell %q as a formula:\n%s", name, sep, cell, b.String())
				}
			}
		}
	}
}

// formulaStart says whether a spreadsheet would take cell, once stripped
// of its spaces and quotes, as a formula.
func formulaStart(cell string) bool {
	cell = strings.TrimLeft(cell, " \"")
	if cell == "-" || cell == "-\"" {
		return false // the report's "none", no formula
	}
	for _, p := range []string{"=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠"} {
		if strings.HasPrefix(cell, p) {
			return true
		}
	}
	return false
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/catalogue.yaml")
	f.Add(b)
	f.Add([]byte("classes: [{name: x}]\nstores: [{name: s, address: '[::1]:80', classes: [x]}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		for _, s := range c.Stores {
			c.StoreAt(s.Address)
		}
		if _, err := c.Build([]Flow{{Destination: "10.0.0.1:1"}}, nil, "", t0); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzFlowBatch: an agent's batch either validates or fails with
// ErrInvalid, and every valid destination can be matched.
func FuzzFlowBatch(f *testing.F) {
	f.Add("node-1", "c1", "10.1.0.5:5432", int64(3))
	f.Add("", "c1", "[::1]:80", int64(1))
	f.Add("n", "c", "10.1.0.5", int64(0))
	c, err := Parse([]byte("classes: [{name: x}]\nstores: [{name: s, address: '10.1.0.0/16', classes: [x]}]"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, node, container, dest string, count int64) {
		b := FlowBatch{Node: node, Flows: []FlowReport{{Container: container, Destination: dest, Count: count}}}
		if err := b.Validate(); err != nil {
			if !errors.Is(err, agentproto.ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		fl := Flow{Node: node, Container: container, Destination: dest, Count: count}
		c.Check(&fl)
	})
}
