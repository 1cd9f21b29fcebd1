package servertest

import "testing"

// Restart starts a stopped server again on the same data directory and
// address (an outage that ends), failing the test if it does not listen.
func (s *Server) Restart(t *testing.T) {
	t.Helper()
	s.restart(t)
}
