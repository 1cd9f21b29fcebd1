package identity

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func BenchmarkSignX509(b *testing.B) {
	a, _ := newAuthority(b, &clock{t: time.Now()})
	key, _ := NewKey()
	id := spiffeid.RequireFromString("spiffe://prod.example/ns/a/sa/b")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.SignX509(id, key.Public(), 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
