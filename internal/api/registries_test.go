package api

import "testing"

func TestServerRegistryHost(t *testing.T) {
	for _, tc := range []struct {
		in    string
		host  string
		plain bool
		bad   bool
	}{
		{in: "registry.example.com", host: "registry.example.com"},
		{in: "https://registry.example.com/", host: "registry.example.com"},
		{in: "http://127.0.0.1:5000", host: "127.0.0.1:5000", plain: true},
		{in: " r.example:5000 ", host: "r.example:5000"},
		{in: "ftp://r.example", bad: true},
		{in: "https://r.example/v2/", bad: true},
		{in: "https://user:pw@r.example", bad: true},
		{in: "https://", bad: true},
	} {
		host, plain, err := RegistryHost(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("RegistryHost(%q) = %q, want an error", tc.in, host)
			}
			continue
		}
		if err != nil || host != tc.host || plain != tc.plain {
			t.Errorf("RegistryHost(%q) = %q, %v, %v; want %q, %v", tc.in, host, plain, err, tc.host, tc.plain)
		}
	}
}
