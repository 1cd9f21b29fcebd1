package secrets

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestFindingsBounded: a pushed image of many small files each full of
// tokens made the scanner keep every finding (a layer of 40 files of 600
// tokens was 24,000; a million such files, hundreds of millions, all in
// memory and in the layer's cached notes). Both the streaming pass and
// the read of the layers now keep at most maxFindings per layer and per
// image; the rest are counted out, not kept.
func TestFindingsBounded(t *testing.T) {
	f := newFakes()
	var files []file
	for i := range 40 {
		var b strings.Builder
		for range 600 {
			b.WriteString("token=" + f.github("ghp_") + "\n")
		}
		files = append(files, file{fmt.Sprintf("app/tokens-%02d.txt", i), b.String()})
	}
	fsys := image(t, files)
	read, err := Scan(context.Background(), fsys, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tars, _ := tarsOf.Load(fsys)
	st := streamed(t, Options{}, tars.([][]byte))
	if n := len(st.Layers()[0].Notes); n > 4<<20 {
		t.Errorf("the layer's kept notes are %d bytes", n)
	}
	stream, err := Scan(context.Background(), st, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]Finding{"reading the layers": read, "streaming": stream} {
		if len(got) == 0 || len(got) > maxFindings {
			t.Errorf("%s: %d findings, want 1 to %d", name, len(got), maxFindings)
		}
	}
}
