package console

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/attest"
	"github.com/bulwark-sec/bulwark/internal/instance"
)

type fakeInstances []instance.Instance

func (f fakeInstances) List(workload string) []instance.Instance {
	var out []instance.Instance
	for _, in := range f {
		if workload == "" || in.Workload == workload {
			out = append(out, in)
		}
	}
	return out
}

// The instances page lists each instance with its status, reason and
// region source, escapes what registrants wrote, and says so when the
// feature is off.
func TestConsoleInstances(t *testing.T) {
	st, token := seed(t)
	get := func(h http.Handler, path string) string {
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(loggedIn(t, h, token))
		rec := serve(h, r)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	if body := get(newConsole(t, st), "/ui/instances"); !strings.Contains(body, "not enabled") {
		t.Fatalf("disabled: %s", body)
	}
	list := fakeInstances{
		{ID: "pay-0", Workload: "payments", Kind: attest.SNP, Status: instance.Verified, Region: "eu-west", RegionSource: instance.RegionPlatform, Image: "sha256:0123456789abcdef"},
		{ID: "pay-1", Workload: "payments", Kind: attest.SNP, Status: instance.Revoked, Reason: "tcb-out-of-date", Region: "eu-west", RegionSource: instance.RegionNodeConfig},
		{ID: "<script>x</script>", Workload: "kms", Kind: attest.SGX, Status: instance.Failed, Reason: "debug"},
	}
	h := New(st, Options{Logger: slog.New(slog.DiscardHandler), Instances: list})
	body := get(h, "/ui/instances")
	for _, want := range []string{"pay-0", "platform", "tcb-out-of-date", "node-config", "sha256:0123456789ab", "&lt;script&gt;x&lt;/script&gt;", "revoked"} {
		if !strings.Contains(body, want) {
			t.Errorf("instances page does not show %q", want)
		}
	}
	if strings.Contains(body, "<script>x") {
		t.Error("an instance ID was not escaped")
	}
	if body := get(h, "/ui/instances?workload=kms"); strings.Contains(body, "pay-0") {
		t.Error("the workload filter did not apply")
	}
}
