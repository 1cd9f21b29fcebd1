package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"golang.org/x/sys/unix"

	"github.com/bulwark-sec/bulwark/internal/allowlist"
	"github.com/bulwark-sec/bulwark/internal/canary"
	"github.com/bulwark-sec/bulwark/internal/registrytest"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// execVia execs path in a helper process (this test binary again, which
// execs it in place): "ran", "eperm" or the error. Never fork into a
// watched exec from the listener's own process (canary.MaybeHelper).
func execVia(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{"BULWARK_CANARY_EXEC=" + path}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == canary.ProgramExit:
		return "ran"
	case errors.As(err, &ee) && ee.ExitCode() == 77:
		return "eperm"
	}
	return err.Error() + " " + string(out)
}

// fakeContainer watches a tmpfs of its own as one container of image,
// with list, without containerd.
func fakeContainer(t *testing.T, a *Agent, ref string, list *allowlist.List) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bulwark-test", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := a.WatchDir("ctr", "test", ref, dir, list); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLearningWindow: in prevent with a learning window, a program not in
// the image runs during the window and is reported as learning; when the
// window ends the list is locked with it: it keeps running, a new program
// is refused. The learned list is signed as an in-toto attestation about
// the image, written to disk (a DSSE envelope the public key verifies)
// and pushed next to the image, where sign.Verify (cosign's format) finds
// it.
func TestLearningWindow(t *testing.T) {
	needRoot(t)
	reg := registrytest.New(t)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, "app:1", img)
	dg, _ := img.Digest()
	image := dg.String()
	privPEM, _, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sign.LoadPrivateKey(privPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewKeySigner(key)
	learnDir := t.TempDir()
	var mu sync.Mutex
	var events []Event
	a, err := New(Config{Mode: ModePrevent, Mechanism: MechanismFanotify, CanaryDir: t.TempDir(), Node: "node-1",
		Log:    slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Report: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
		Learn:  LearnConfig{Window: 3 * time.Second, Dir: learnDir, Signer: signer, Push: true}})
	if err != nil {
		t.Fatal(err)
	}
	stop := serveOnly(t, a)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.learnLoop(ctx)

	prog := func(tag string) []byte { return append(canary.Program(), tag...) } // distinct contents, each runs
	sum := func(b []byte) string {
		h := sha256.Sum256(b)
		return "sha256:" + strings.TrimPrefix(allowlist.Digest(h).String(), "sha256:")
	}
	list, err := allowlist.FromInventory(image, []sbom.File{{Path: "/base", Type: "file", Mode: "0755", Digest: sum(prog("base"))}}, allowlist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	root := fakeContainer(t, a, ref.String(), list)
	for name, tag := range map[string]string{"base": "base", "tool": "tool", "later": "later"} {
		if err := os.WriteFile(filepath.Join(root, name), prog(tag), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := execVia(t, filepath.Join(root, "base")); got != "ran" {
		t.Fatalf("the image's program: %s", got)
	}
	if got := execVia(t, filepath.Join(root, "tool")); got != "ran" {
		t.Fatalf("a new program inside the window: %s, want it to run (learning)", got)
	}
	// The report follows the answer (the exec does not wait for it): wait
	// for it, and never hold mu while failing (the agent's worker reporting
	// would then block the test's cleanup).
	var seen []Event
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		seen = append(seen[:0], events...)
		mu.Unlock()
		if len(seen) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(seen) != 1 || seen[0].Reason != ReasonLearning || seen[0].Digest != sum(prog("tool")) || seen[0].Verdict != VerdictReported {
		t.Fatalf("events in the window: %+v, want one learning report of tool", seen)
	}

	envPath := filepath.Join(learnDir, strings.TrimPrefix(image, "sha256:")+".learned.intoto.json")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(envPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no learned attestation written 20 s after the window")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := execVia(t, filepath.Join(root, "tool")); got != "ran" {
		t.Fatalf("the learned program after the lock: %s, want it to run", got)
	}
	if got := execVia(t, filepath.Join(root, "later")); got != "eperm" {
		t.Fatalf("a new program after the lock: %s, want eperm", got)
	}

	// The envelope on disk: signed by the key, about the image, listing tool.
	b, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	h := sha256.Sum256(dsse.PAE(env.PayloadType, payload))
	if !ecdsa.VerifyASN1(&key.PublicKey, h[:], sig) {
		t.Fatal("the learned attestation's signature does not verify")
	}
	var st sign.Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	var pred Learned
	_ = json.Unmarshal(st.Predicate, &pred)
	if st.PredicateType != LearnedPredicateType || st.Subject[0].Digest["sha256"] != strings.TrimPrefix(image, "sha256:") ||
		len(pred.Learned) != 1 || pred.Learned[0].Digest != sum(prog("tool")) || pred.Base != 1 || pred.Node != "node-1" {
		t.Fatalf("statement %+v, predicate %+v", st, pred)
	}
	if !bytes.Contains(payload, []byte(`"learned"`)) {
		t.Fatal("no learned list in the statement")
	}
	// Pushed next to the image, in cosign's format (the image carries its
	// certification's signature, as a certified image does).
	if err := sign.SignImage(ctx, ref.Context().Digest(image), signer, nil, sign.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Verify(ctx, ref.Context().Digest(image).String(), &key.PublicKey,
		sign.Requirements{Attestations: []string{LearnedPredicateType}}, sign.Options{}); err != nil {
		t.Fatalf("verifying the pushed learned attestation: %v", err)
	}
}
