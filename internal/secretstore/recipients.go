package secretstore

import (
	"slices"
	"sync"
)

// maxRecipients bounds the recipients remembered per secret.
const maxRecipients = 1000

// recipients remembers, per secret, who it was released to since the
// server started (for the governance report's "can reach"; the audit log
// has every release).
type recipients struct {
	mu sync.Mutex
	m  map[string]map[string]bool
}

func (r *recipients) note(secret string, w Workload) {
	who := w.Application
	if who == "" {
		who = w.ID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]map[string]bool{}
	}
	set := r.m[secret]
	if set == nil {
		set = map[string]bool{}
		r.m[secret] = set
	}
	if len(set) < maxRecipients {
		set[who] = true
	}
}

func (r *recipients) list(secret string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.m[secret]))
	for who := range r.m[secret] {
		out = append(out, who)
	}
	slices.Sort(out)
	return out
}

func (r *recipients) forget(secret string) {
	r.mu.Lock()
	delete(r.m, secret)
	r.mu.Unlock()
}

// ReleasedTo lists who secret name was released to since the server
// started: owner applications, else SPIFFE IDs.
func (s *Service) ReleasedTo(name string) []string { return s.recipients.list(name) }
