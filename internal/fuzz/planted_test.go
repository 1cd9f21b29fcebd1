package fuzz

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
)

var plantedAuth = []Pair{{"Authorization", "Bearer " + fuzztest.Token}}

func startPlanted(t *testing.T, faulty bool) (*fuzztest.Server, string) {
	t.Helper()
	s := &fuzztest.Server{Faulty: faulty}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func fuzzPlanted(t *testing.T, target string, opts Options) *Result {
	t.Helper()
	spec, err := Parse([]byte(fuzztest.Spec))
	if err != nil {
		t.Fatal(err)
	}
	opts.Target = target
	if opts.Auth == nil {
		opts.Auth = plantedAuth
	}
	if opts.MaxRequests == 0 {
		opts.MaxRequests = 1500
	}
	res, err := Run(t.Context(), spec, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func findingOf(res *Result, rule, op string) *Finding {
	for i, f := range res.Findings {
		if f.Rule == rule && f.Operation == op {
			return &res.Findings[i]
		}
	}
	return nil
}

func TestPlantedFaultsFoundShrunkAndReproducible(t *testing.T) {
	_, target := startPlanted(t, true)
	res := fuzzPlanted(t, target, Options{Seed: 7})
	for _, f := range res.Findings {
		t.Logf("%s %s: %s\n  %s", f.Rule, f.Operation, f.Message, f.Curl)
	}

	// A 500 on a long string: shrunk to the one field, one byte over.
	f := findingOf(res, RuleServerError, "createItem")
	if f == nil {
		t.Fatal("no server-error on createItem")
	}
	body, _ := f.Request.Body.(map[string]any)
	name, _ := body["name"].(string)
	if len(body) != 1 || utf8.RuneCountInString(name) != fuzztest.LongName+1 {
		t.Errorf("shrunk body = %d fields, name of %d runes; want only name, %d runes", len(body), utf8.RuneCountInString(name), fuzztest.LongName+1)
	}
	if st, _ := replay(t, f.Curl); st != http.StatusInternalServerError {
		t.Errorf("curl replay: status %d, want 500", st)
	}
	curlExec(t, f.Curl, "500")

	// The admin route without authentication.
	for _, f := range res.Findings {
		if f.Rule == RuleAuthBypass && f.Operation != "listAdminUsers" {
			t.Errorf("auth-bypass on %s", f.Operation)
		}
	}
	f = findingOf(res, RuleAuthBypass, "listAdminUsers")
	if f == nil {
		t.Fatal("no auth-bypass on listAdminUsers")
	}
	if strings.Contains(f.Curl, "Authorization") && !strings.Contains(f.Curl, garbageToken) {
		t.Errorf("auth-bypass curl carries credentials: %s", f.Curl)
	}
	if st, _ := replay(t, f.Curl); st != http.StatusOK {
		t.Errorf("curl replay: status %d, want 200", st)
	}
	curlExec(t, f.Curl, "200")

	// An AWS-style key in an error body.
	f = findingOf(res, RuleLeakedSecret, "getReport")
	if f == nil {
		t.Fatal("no leaked-secret on getReport")
	}
	if !strings.Contains(f.Message, "AWS") || strings.Contains(f.Message, fuzztest.AWSKey) || strings.Contains(f.Curl, fuzztest.Token) {
		t.Errorf("message %q / curl %q: want the rule, never the key or the token", f.Message, f.Curl)
	}
	if st, b := replay(t, f.Curl); st != http.StatusBadRequest || !strings.Contains(b, fuzztest.AWSKey) {
		t.Errorf("curl replay: status %d body %q, want 400 with the key", st, b)
	}
	curlExec(t, f.Curl, "400")

	// An undeclared status code.
	f = findingOf(res, RuleUndeclaredStatus, "getItem")
	if f == nil {
		t.Fatal("no undeclared-status on getItem")
	}
	if st, _ := replay(t, f.Curl); st != http.StatusTeapot {
		t.Errorf("curl replay: status %d, want 418", st)
	}
	curlExec(t, f.Curl, "418")

	// The owner's e-mail address, on both operations that return items.
	for _, op := range []string{"createItem", "getItem"} {
		if findingOf(res, RuleDataClass, op) == nil {
			t.Errorf("no data-class finding on %s", op)
		}
	}
	if len(res.Findings) != 7 {
		t.Errorf("%d findings, want 7 (server-error, 2 auth-bypass, leaked-secret, undeclared-status, 2 data-class)", len(res.Findings))
	}
}

func TestCleanServerHasNoFindings(t *testing.T) {
	s, target := startPlanted(t, false)
	res := fuzzPlanted(t, target, Options{Seed: 7})
	for _, f := range res.Findings {
		t.Errorf("%s %s: %s\n  %s", f.Rule, f.Operation, f.Message, f.Curl)
	}
	if res.Requests != 1500 || res.Stop != "max-requests" || s.Requests != res.Requests {
		t.Errorf("requests %d (server saw %d), stop %q; want 1500, max-requests", res.Requests, s.Requests, res.Stop)
	}
}

// replay sends the request a curl line describes through net/http, the
// credentials from the planted server's token.
func replay(t *testing.T, curl string) (int, string) {
	t.Helper()
	args := shellWords(t, curl, map[string]string{AuthEnv + "1": "Bearer " + fuzztest.Token})
	if args[0] != "curl" {
		t.Fatalf("not a curl line: %s", curl)
	}
	method, target, body := "GET", "", ""
	var hasBody bool
	hdr := http.Header{}
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "-sS", "-i":
		case "-X":
			i++
			method = args[i]
		case "-H":
			i++
			k, v, _ := strings.Cut(args[i], ": ")
			hdr.Add(k, v)
		case "--data-raw":
			i++
			body, hasBody = args[i], true
		default:
			if strings.HasPrefix(args[i], "-") || target != "" {
				t.Fatalf("unexpected curl argument %q", args[i])
			}
			target = args[i]
		}
	}
	var rd io.Reader
	if hasBody {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// curlExec runs the curl line with sh and curl, where installed, and
// checks the status line.
func curlExec(t *testing.T, line, status string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed; replayed through net/http only")
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20e9)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = append(os.Environ(), AuthEnv+"1=Bearer "+fuzztest.Token)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh -c %s: %v", line, err)
	}
	first, _, _ := bytes.Cut(out, []byte("\n"))
	if f := strings.Fields(string(first)); len(f) < 2 || f[1] != status {
		t.Errorf("curl: %q, want status %s", first, status)
	}
}

// shellWords splits a POSIX shell line of single-quoted, double-quoted
// (with $NAME expansion) and bare words.
func shellWords(t *testing.T, line string, env map[string]string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' && in:
			words = append(words, cur.String())
			cur.Reset()
			in = false
		case c == ' ':
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated quote in %s", line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '\\':
			i++
			cur.WriteByte(line[i])
			in = true
		case c == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				t.Fatalf("unterminated quote in %s", line)
			}
			s := line[i+1 : i+1+j]
			for k, v := range env {
				s = strings.ReplaceAll(s, "$"+k, v)
			}
			if strings.Contains(s, "$") {
				t.Fatalf("unexpanded variable in %q", s)
			}
			cur.WriteString(s)
			i += j + 1
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return slices.Clip(words)
}
