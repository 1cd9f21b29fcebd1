package servertest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Scan has the server scan ref (POST /api/v1/scans as the admin) and waits
// up to a minute for the job to be done, failing the test otherwise.
func (s *Server) Scan(t testing.TB, ref string) {
	t.Helper()
	code, body := s.Call(t, s.Admin, "POST", "/api/v1/scans", map[string]string{"image": ref})
	var queued struct{ Job int64 }
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &queued) != nil {
		t.Fatalf("queueing the scan of %s: %d %s", ref, code, body)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		_, body := s.Call(t, s.Admin, "GET", "/api/v1/jobs/"+strconv.FormatInt(queued.Job, 10), nil)
		var j struct{ State, Error string }
		json.Unmarshal([]byte(body), &j)
		if j.State == "done" {
			return
		}
		if j.Error != "" || time.Now().After(deadline) {
			t.Fatalf("the scan of %s: %s", ref, body)
		}
	}
}

// NodeToken makes an operator token bound to node (named "node:NODE", as
// `bulwark server token create` names an agent's).
func (s *Server) NodeToken(t testing.TB, node string) string {
	t.Helper()
	code, body := s.Call(t, s.Admin, "POST", "/api/v1/tokens", map[string]string{"name": "node:" + node, "role": "operator"})
	var tok struct{ Token string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("creating a token for node %s: %d %s", node, code, body)
	}
	return tok.Token
}
