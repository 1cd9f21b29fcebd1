package attest

import "github.com/google/go-tdx-guest/pcs"

func svns(c []pcs.TcbComponent) []byte {
	out := make([]byte, len(c))
	for i := range c {
		out[i] = c[i].Svn
	}
	return out
}
