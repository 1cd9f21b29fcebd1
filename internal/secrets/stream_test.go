package secrets

import (
	"context"
	"strings"
	"testing"
)

// TestStreamedLayers: the streaming inspector finds what reading the layers
// finds (scan compares both ways) where the two could part: a path written
// twice in one layer, a NUL byte past the first 512 bytes but inside the
// sniffed 8 KiB, one past them, a whited-out file, and a shared base
// layer's files.
func TestStreamedLayers(t *testing.T) {
	f := newFakes()
	tok := f.github("ghp_")
	pad := strings.Repeat("x", 4000)
	base := []file{
		{"etc/app/token", "token=" + tok + "\n"},
		{"root/.ssh/id_ed25519", f.edKey(t)},
	}
	fsys := image(t,
		base,
		[]file{
			{"app/twice.env", "GITHUB_TOKEN=" + f.github("gho_") + "\n"},
			{"app/twice.env", "GITHUB_TOKEN=" + f.github("ghu_") + "\n"},
			{"app/nul-in-sniff.txt", pad + "\x00" + tok},
			{"app/nul-after-sniff.txt", strings.Repeat(pad, 3) + "\x00\n" + "t=" + tok + "\n"},
			{"root/.ssh/.wh.id_ed25519", ""},
		},
	)
	assertLines(t, describe(scan(t, fsys, nil, Options{})), []string{
		"github-token /etc/app/token:1 sha256:layer0",
		"private-key /root/.ssh/id_ed25519:1 sha256:layer0 deleted",
		"github-token /app/nul-after-sniff.txt:2 sha256:layer1",
		"github-token /app/twice.env:1 sha256:layer1 deleted",
		"github-token /app/twice.env:1 sha256:layer1",
	})
}

// TestStreamedKey: the key kept with a layer's findings follows the
// options, and Scan refuses findings made with other options instead of
// reporting them.
func TestStreamedKey(t *testing.T) {
	k1, _ := Options{}.Key()
	k2, _ := Options{MaxFileSize: 1 << 10}.Key()
	k3, _ := Options{SkipPaths: []string{"/opt"}}.Key()
	if k1 == k2 || k1 == k3 || k2 == k3 || !strings.HasPrefix(k1, "secrets.v") {
		t.Errorf("keys %q %q %q, want distinct", k1, k2, k3)
	}
	if again, _ := (Options{}).Key(); again != k1 {
		t.Errorf("key not stable: %q then %q", k1, again)
	}
	tars := [][]byte{layerTar(t, file{"app/.env", "password: " + newFakes().password() + "\n"})}
	fsys := streamed(t, Options{MaxFileSize: 1 << 10}, tars)
	if _, err := Scan(context.Background(), fsys, nil, Options{}); err == nil || !strings.Contains(err.Error(), "other rules or options") {
		t.Errorf("findings of other options: err = %v", err)
	}
}

// TestStreamedNotesDamaged: notes that do not decode, or name a rule that
// does not exist, are an error, not an empty result.
func TestStreamedNotesDamaged(t *testing.T) {
	s, err := Options{}.settings()
	if err != nil {
		t.Fatal(err)
	}
	fsys := image(t, []file{{"a", "b"}})
	for _, notes := range []string{"{", `{"key":"` + s.key + `","findings":[{"rule":"no-such-rule","path":"/a","line":1}]}`} {
		if _, err := s.fromNotes(fsys, 0, []byte(notes)); err == nil {
			t.Errorf("notes %q: no error", notes)
		}
	}
}
