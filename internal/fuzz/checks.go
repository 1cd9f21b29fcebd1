package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/bulwark-sec/bulwark/internal/secrets"
)

// The rules, as named in reports.
const (
	RuleServerError      = "server-error"
	RuleUndeclaredStatus = "undeclared-status"
	RuleSchemaMismatch   = "schema-mismatch"
	RuleSlowResponse     = "slow-response"
	RuleAuthBypass       = "auth-bypass"
	RuleLeakedSecret     = "leaked-secret"
	RuleStackTrace       = "stack-trace"
	RuleDataClass        = "data-class"
)

// RuleInfo describes a rule for reports and help text.
type RuleInfo struct {
	ID, Severity, Description string
}

// Rules lists the rules in report order.
func Rules() []RuleInfo {
	return []RuleInfo{
		{RuleServerError, "high", "a 5xx the document does not declare for the operation, or a dropped connection"},
		{RuleAuthBypass, "critical", "an operation the document marks as secured answers 2xx without credentials or with a garbage token"},
		{RuleLeakedSecret, "critical", "a credential, private key or token (the secret scanner's rules) in a response body or header"},
		{RuleDataClass, "high", "a value of a data class (e-mail, card number, national id) from an operation not granted that class"},
		{RuleStackTrace, "medium", "a stack trace or panic message in a response"},
		{RuleUndeclaredStatus, "medium", "a status code the document does not declare for the operation"},
		{RuleSchemaMismatch, "medium", "a JSON body that does not match the declared response schema"},
		{RuleSlowResponse, "low", "a response slower than the budget (--slow), or none before the request timeout"},
	}
}

func severityOf(rule string) string {
	for _, r := range Rules() {
		if r.ID == rule {
			return r.Severity
		}
	}
	return "medium"
}

// exchange is one request and what came back.
type exchange struct {
	status  int
	header  map[string][]string
	body    []byte
	elapsed time.Duration
	// err is a transport error: a dropped connection or a timeout.
	err     error
	timeout bool
}

// hit is a rule tripped by one exchange; key tells hits of the same rule
// on the same operation apart (the status, the secret rule, the class).
type hit struct {
	rule, key, message string
}

// checker runs the response checks.
type checker struct {
	slow   time.Duration
	grants map[string][]string
	// sent holds the strings the campaign sent: a data-class value the
	// server echoes back is not a leak.
	sent map[string]bool
	// schemaOpts select JSON Schema 2020-12 for OpenAPI 3.1 documents.
	schemaOpts []openapi3.SchemaValidationOption
}

func (c *checker) check(op *operation, ex *exchange) []hit {
	if ex.err != nil {
		if ex.timeout {
			return []hit{{RuleSlowResponse, "timeout", "no response before the request timeout"}}
		}
		return []hit{{RuleServerError, "dropped", fmt.Sprintf("connection dropped: %v", ex.err)}}
	}
	var hits []hit
	decl := op.declared(ex.status)
	if ex.status >= 500 && (decl == nil || op.Responses.Status(ex.status) == nil) {
		hits = append(hits, hit{RuleServerError, fmt.Sprint(ex.status), fmt.Sprintf("status %d", ex.status)})
	} else if decl == nil {
		hits = append(hits, hit{RuleUndeclaredStatus, fmt.Sprint(ex.status), fmt.Sprintf("status %d is not declared", ex.status)})
	}
	if decl != nil {
		if msg := schemaMismatch(decl, ex, c.schemaOpts); msg != "" {
			hits = append(hits, hit{RuleSchemaMismatch, fmt.Sprint(ex.status), msg})
		}
	}
	if c.slow > 0 && ex.elapsed > c.slow {
		hits = append(hits, hit{RuleSlowResponse, "slow", fmt.Sprintf("%.2f s, over the %.2f s budget", ex.elapsed.Seconds(), c.slow.Seconds())})
	}
	text := responseText(ex)
	for _, f := range secrets.ScanText("response", text) {
		hits = append(hits, hit{RuleLeakedSecret, f.Rule, fmt.Sprintf("%s (%s) at line %d", f.Description, f.Redacted, f.Line)})
	}
	if m := stackTrace(text); m != "" {
		hits = append(hits, hit{RuleStackTrace, "trace", "stack trace: " + m})
	}
	granted := append(slices.Clone(op.Classes), c.grants[op.ID]...)
	for _, d := range findDataClasses(ex.body) {
		if slices.Contains(granted, d.class) || c.sent[d.value] {
			continue
		}
		hits = append(hits, hit{RuleDataClass, d.class, fmt.Sprintf("%s value %s returned; the operation is not granted %q", d.class, redact(d.value), d.class)})
	}
	return hits
}

// responseText is the headers, one per line, then the body.
func responseText(ex *exchange) []byte {
	var b bytes.Buffer
	for _, k := range sortedKeys(ex.header) {
		for _, v := range ex.header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteByte('\n')
	b.Write(ex.body)
	return b.Bytes()
}

// schemaMismatch checks a JSON body against the declared schema; "" when
// it matches or nothing is declared to check against.
func schemaMismatch(decl *openapi3.Response, ex *exchange, opts []openapi3.SchemaValidationOption) string {
	if decl.Content == nil || ex.status == http.StatusNoContent || ex.status == http.StatusNotModified {
		return ""
	}
	mt := decl.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return ""
	}
	ct := http.Header(ex.header).Get("Content-Type")
	if !isJSON(ct) {
		if len(decl.Content) == 1 {
			return fmt.Sprintf("Content-Type %q, the document declares application/json", ct)
		}
		return ""
	}
	v, err := decodeJSON(ex.body)
	if err != nil {
		return fmt.Sprintf("body is not JSON: %v", err)
	}
	if len(opts) == 0 {
		// OpenAPI 3.0: keep values out of the message. With the JSON
		// Schema 2020-12 validator (3.1) the option fails every
		// validation, and its messages do not quote values anyway.
		opts = append(opts, openapi3.DisableSchemaErrorDetails())
	}
	opts = append(opts, openapi3.VisitAsResponse())
	if err := visit(mt.Schema.Value, v, opts); err != nil {
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return "body does not match the declared schema: " + strings.ReplaceAll(msg, "\n", " ")
	}
	return ""
}

var stackTraces = []*regexp.Regexp{
	regexp.MustCompile(`goroutine \d+ \[[a-z ]+\]:`),
	regexp.MustCompile(`(?m)^panic: .+`),
	regexp.MustCompile(`Traceback \(most recent call last\):`),
	regexp.MustCompile(`(?m)^\s+at [\w$.<>]+\([\w$]+\.(java|kt|scala):\d+\)`),
	regexp.MustCompile(`(?m)^\s+at [\w.<>` + "`" + `]+\(.*\) in .+:line \d+`),
	regexp.MustCompile(`(?m)^\s+at .+ \(/[^ )]+\.[cm]?js:\d+:\d+\)`),
	regexp.MustCompile(`(?m)^\s*File "[^"]+", line \d+, in `),
}

func stackTrace(text []byte) string {
	for _, re := range stackTraces {
		if m := re.Find(text); m != nil {
			return strings.TrimSpace(string(m[:min(len(m), 80)]))
		}
	}
	return ""
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// visit validates v against s; a panic in the validator (a schema it
// cannot handle) is an error of the document, not of the response.
func visit(s *openapi3.Schema, v any, opts []openapi3.SchemaValidationOption) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = nil
		}
	}()
	return s.VisitJSON(v, opts...)
}
