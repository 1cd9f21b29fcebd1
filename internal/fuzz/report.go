package fuzz

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/owenrumney/go-sarif/v2/sarif"
)

// Formats are the report formats Write takes.
var Formats = []string{"table", "json", "sarif", "junit"}

// AuthEnv is the prefix of the environment variables a curl line reads
// the configured credentials from: the first --auth header's value is
// $BULWARK_FUZZ_AUTH_1, and so on. Reports never hold the credentials.
const AuthEnv = "BULWARK_FUZZ_AUTH_"

// curl is a shell command that sends r as the campaign did.
func (c *campaign) curl(r Request, cr creds) string {
	var b strings.Builder
	b.WriteString("curl -sS -i")
	for _, a := range c.opts.CurlArgs {
		b.WriteString(" " + shellWord(a))
	}
	b.WriteString(" -X " + r.Method + " " + shellQuote(c.url(r)))
	for _, h := range r.Header {
		b.WriteString(" -H " + shellQuote(h.Name+": "+h.Value))
	}
	body, has := r.bodyBytes()
	if has {
		b.WriteString(" -H 'Content-Type: application/json'")
	}
	switch cr {
	case credsConfigured:
		for i, a := range c.opts.Auth {
			fmt.Fprintf(&b, ` -H "%s: $%s%d"`, a.Name, AuthEnv, i+1)
		}
	case credsGarbage:
		for _, a := range c.authHeaders(cr) {
			b.WriteString(" -H " + shellQuote(a.Name+": "+a.Value))
		}
	}
	if has {
		b.WriteString(" --data-raw " + shellQuote(string(body)))
	}
	return b.String()
}

// shellWord is s as one POSIX shell word: bare when it is only letters,
// digits and _./:=@%+-, else quoted.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+-") == "" {
		return s
	}
	return shellQuote(s)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Write writes the result in one of Formats.
func Write(w io.Writer, format string, res *Result) error {
	switch format {
	case "table":
		return writeTable(w, res)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case "sarif":
		return writeSARIF(w, res)
	case "junit":
		return writeJUnit(w, res)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

func writeTable(w io.Writer, res *Result) error {
	fmt.Fprintf(w, "%d requests to %d operations in %.1f s (seed %d, stopped: %s): %d findings\n",
		res.Requests, res.Operations, res.Seconds, res.Seed, res.Stop, len(res.Findings))
	if len(res.Findings) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nRULE\tSEVERITY\tOPERATION\tMESSAGE")
	for _, f := range res.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Rule, f.Severity, f.Operation, oneLine(f.Message, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nReproduce:")
	for i, f := range res.Findings {
		if _, err := fmt.Fprintf(w, "%d. %s %s\n   %s\n", i+1, f.Rule, f.Operation, f.Curl); err != nil {
			return err
		}
	}
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

func sarifLevel(sev string) string {
	switch sev {
	case "critical", "high":
		return "error"
	case "medium":
		return "warning"
	}
	return "note"
}

func writeSARIF(w io.Writer, res *Result) error {
	rep, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	run := sarif.NewRunWithInformationURI("bulwark-fuzz", "https://github.com/bulwark-sec/bulwark")
	for _, r := range Rules() {
		run.AddRule(r.ID).WithName(r.ID).
			WithShortDescription(sarif.NewMultiformatMessageString(r.Description)).
			WithFullDescription(sarif.NewMultiformatMessageString(r.Description))
	}
	for _, f := range res.Findings {
		props := sarif.NewPropertyBag()
		props.Add("curl", f.Curl)
		props.Add("credentials", f.Credentials)
		r := run.CreateResultForRule(f.Rule).
			WithLevel(sarifLevel(f.Severity)).
			WithMessage(sarif.NewTextMessage(f.Operation + ": " + f.Message + "\nReproduce: " + f.Curl))
		r.AddLocation(sarif.NewLocationWithPhysicalLocation(
			sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(res.Target))))
		r.AttachPropertyBag(props)
	}
	rep.AddRun(run)
	return rep.PrettyWrite(w)
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// writeJUnit writes one test suite per rule and one test case per
// operation the rule tripped on; a rule with no finding is one passing
// case, so CI shows every rule that ran.
func writeJUnit(w io.Writer, res *Result) error {
	out := junitSuites{}
	for _, r := range Rules() {
		s := junitSuite{Name: "bulwark-fuzz " + r.ID, Time: fmt.Sprintf("%.3f", res.Seconds)}
		for _, f := range res.Findings {
			if f.Rule != r.ID {
				continue
			}
			s.Cases = append(s.Cases, junitCase{Name: f.Operation, ClassName: r.ID, Failure: &junitFailure{
				Message: oneLine(f.Message, 200), Type: f.Severity, Text: f.Message + "\n" + f.Curl,
			}})
			s.Failures++
		}
		if len(s.Cases) == 0 {
			s.Cases = []junitCase{{Name: r.Description, ClassName: r.ID}}
		}
		s.Tests = len(s.Cases)
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
