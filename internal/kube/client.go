package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Patch types.
const (
	MergePatch          = "application/merge-patch+json"
	StrategicMergePatch = "application/strategic-merge-patch+json"
)

// maxBody bounds a response body read from the API server.
const maxBody = 16 << 20

// Client calls one Kubernetes API server.
type Client struct {
	// Server is the API server's base URL (https://host:port).
	Server string

	http  *http.Client
	token string
}

// StatusError is a call the API server answered with an error status.
type StatusError struct {
	Method, Path string
	Code         int
	Status       metav1.Status
}

func (e *StatusError) Error() string {
	msg := e.Status.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Code, msg)
}

// IsNotFound reports whether err is the API server's 404.
func IsNotFound(err error) bool { return code(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 (a failed precondition, an
// object that exists already).
func IsConflict(err error) bool { return code(err) == http.StatusConflict }

func code(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// Get reads the object at path (/api/v1/namespaces/N/pods/P) into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, "", nil, out)
}

// Create posts obj to the collection at path; out may be nil.
func (c *Client) Create(ctx context.Context, path string, obj, out any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encoding the object for %s: %w", path, err)
	}
	return c.do(ctx, http.MethodPost, path, "application/json", b, out)
}

// Patch patches the object at path with patch of patchType; out may be
// nil.
func (c *Client) Patch(ctx context.Context, path, patchType string, patch []byte, out any) error {
	return c.do(ctx, http.MethodPatch, path, patchType, patch, out)
}

// Delete deletes the object at path with opts (preconditions, grace
// period); opts may be nil.
func (c *Client) Delete(ctx context.Context, path string, opts *metav1.DeleteOptions) error {
	var body []byte
	ctype := ""
	if opts != nil {
		o := *opts
		o.Kind, o.APIVersion = "DeleteOptions", "v1"
		body, _ = json.Marshal(o)
		ctype = "application/json"
	}
	return c.do(ctx, http.MethodDelete, path, ctype, body, nil)
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("calling the Kubernetes API: path %q is not absolute", path)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Server, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("calling %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Method: method, Path: path, Code: resp.StatusCode}
		_ = json.Unmarshal(b, &se.Status) // a proxy's HTML page leaves it empty
		return se
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// defaultTimeout bounds one call.
const defaultTimeout = 30 * time.Second
