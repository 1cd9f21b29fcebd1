package report

import (
	"bytes"
	"strings"
	"testing"
)

// TestTableTitleAndPlurals: the table has a TITLE column with the advisory's
// summary on one line, cut to titleWidth; one finding is "1 vulnerability".
func TestTableTitleAndPlurals(t *testing.T) {
	r := testScan()
	r.Findings = r.Findings[:1]
	r.Findings[0].Summary = "Command Injection in lodash\tvia template\n" + strings.Repeat("and a very long tail ", 10)
	r.Suppressed = nil
	var buf bytes.Buffer
	if err := Table(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(out, "\n")
	if !strings.HasSuffix(strings.TrimSpace(lines[0]), "TYPE  TITLE") {
		t.Errorf("header %q has no TITLE column last", lines[0])
	}
	row := lines[1]
	want := "npm   Command Injection in lodash via template and a very long ta…"
	if !strings.HasSuffix(row, want) || len([]rune(row[strings.Index(row, "Command"):])) != titleWidth {
		t.Errorf("row %q: want the title on one line, cut to %d runes: ...%q", row, titleWidth, want)
	}
	if !strings.Contains(out, "app:1: 1 vulnerability (1 high)\n") {
		t.Errorf("summary not singular:\n%s", out)
	}

	r.Findings = r.Findings[:0]
	buf.Reset()
	if err := Table(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "app:1: no vulnerabilities\n") {
		t.Errorf("empty summary:\n%s", buf.String())
	}
	if got := plural(2, "vulnerability", "vulnerabilities"); got != "2 vulnerabilities" {
		t.Errorf("plural(2) = %q", got)
	}
}
