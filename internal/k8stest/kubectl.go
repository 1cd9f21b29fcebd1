package k8stest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/pki"
)

// kubectlTimeout bounds one kubectl run.
const kubectlTimeout = 60 * time.Second

// KubectlError is a kubectl run that exited non-zero.
type KubectlError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *KubectlError) Error() string {
	return fmt.Sprintf("kubectl %s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Stderr))
}

func (e *KubectlError) Unwrap() error { return e.Err }

// KubectlBin is the path of the cached kubectl binary.
func (c *Cluster) KubectlBin() string { return filepath.Join(c.bin, "kubectl") }

// Kubectl runs the cached kubectl with the cluster's kubeconfig and
// returns its stdout; a failure is a *KubectlError carrying stderr.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return c.KubectlStdin("", args...)
}

// KubectlStdin is Kubectl with stdin (for `apply -f -`).
func (c *Cluster) KubectlStdin(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.KubectlBin(), append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &KubectlError{Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

// MustKubectl is Kubectl failing the test on error.
func (c *Cluster) MustKubectl(args ...string) string {
	c.t.Helper()
	out, err := c.Kubectl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// kubeconfig is a kubeconfig for server with the admin client pair.
func kubeconfig(server string, caPEM []byte, admin pki.Pair) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: bulwark-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: bulwark-test
  context:
    cluster: bulwark-test
    user: admin
current-context: bulwark-test
`, server, b64(caPEM), b64(admin.CertPEM), b64(admin.KeyPEM))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
