package fuzzcampaign

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckRegistration(t *testing.T) {
	hosts, err := CheckRegistration("https://docs.example.com/api.json", "https://API.example.com:8443/v1", nil)
	if err != nil || strings.Join(hosts, ",") != "api.example.com:8443,docs.example.com" {
		t.Fatalf("default hosts: %v, %v", hosts, err)
	}
	if hosts, err = CheckRegistration("https://api.example.com/api.json", "https://api.example.com:8443", []string{"api.example.com"}); err != nil || len(hosts) != 1 {
		t.Fatalf("a host name allows every port: %v, %v", hosts, err)
	}
	for name, c := range map[string]struct {
		openapi, target string
		allowed         []string
	}{
		"target elsewhere":   {"https://a.example/x.json", "https://b.example", []string{"a.example"}},
		"document elsewhere": {"https://b.example/x.json", "https://a.example", []string{"a.example"}},
		"port differs":       {"https://a.example:1/x.json", "https://a.example:1", []string{"a.example:2"}},
		"wildcard":           {"https://a.example/x.json", "https://a.example", []string{"*.example"}},
		"scheme":             {"ftp://a.example/x.json", "https://a.example", nil},
		"relative":           {"/x.json", "https://a.example", nil},
		"user info":          {"https://a.example/x.json", "https://u:p@a.example", nil},
	} {
		if _, err := CheckRegistration(c.openapi, c.target, c.allowed); !errors.Is(err, ErrRegistration) {
			t.Errorf("%s: %v; want ErrRegistration", name, err)
		}
	}
}

func TestOptionsFill(t *testing.T) {
	var o Options
	if err := o.Fill(Limits{}); err != nil || o.MaxRequests != DefaultCampaignRequest || o.DurationSeconds != 120 || o.Rate != DefaultCampaignRate {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	many := map[string]string{}
	for i := range maxParams + 1 {
		many[string(rune('a'+i))] = "x"
	}
	for _, bad := range []Options{{MaxRequests: -1}, {MaxRequests: 5001}, {DurationSeconds: 601}, {Rate: 201}, {Operations: "(x"},
		{Params: map[string]string{"": "x"}}, {Params: many}} {
		if err := bad.Fill(Limits{}); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v; want ErrOptions", bad, err)
		}
	}
	o = Options{MaxRequests: 10}
	if err := o.Fill(Limits{MaxRequests: 5}); err == nil {
		t.Error("a budget over the server's limit was accepted")
	}
}

// TestHostGuard: the campaign's client sends to the allowed hosts only.
func TestHostGuard(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ts.Close)
	host := strings.TrimPrefix(ts.URL, "http://")
	r := &Runner{}
	if resp, err := r.client([]string{host}).Get(ts.URL); err != nil {
		t.Fatalf("allowed host: %v", err)
	} else {
		resp.Body.Close()
	}
	_, err := r.client([]string{"127.0.0.1:1"}).Get(ts.URL)
	if !errors.Is(err, ErrHostNotRegistered) {
		t.Fatalf("another port of the same address: %v; want ErrHostNotRegistered", err)
	}
}
