package secrets

import (
	"context"
	"strings"
	"testing"
)

// BenchmarkMinifiedBundle: the worst case for the line-window rules, a
// single 4 MiB line full of keywords (URLs, "token", "password"), as in a
// minified JavaScript bundle.
func BenchmarkMinifiedBundle(b *testing.B) {
	chunk := `var a={url:"https://api.example.org/v1/items?id=1",token:e.token,password:t.password,eyJ:"x"};`
	body := strings.Repeat(chunk, (4<<20)/len(chunk))
	fsys := image(b, []file{{"app/static/bundle.min.js", body}, {"app/static/bundle.json", body}})
	b.SetBytes(int64(2 * len(body)))
	b.ResetTimer()
	for range b.N {
		if _, err := Scan(context.Background(), fsys, nil, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
