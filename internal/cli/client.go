package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// clientOptions are the flags of the commands that call a running
// server's API: its URL and a token (from $BULWARK_TOKEN or a file, so it
// is not in the process list).
type clientOptions struct {
	server, tokenFile, token string
}

func (o *clientOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.server, "server", "http://127.0.0.1:8480", "URL of the bulwark server's API")
	cmd.Flags().StringVar(&o.token, "token", "", "API token (prefer $BULWARK_TOKEN or --token-file: a flag shows in the process list)")
	cmd.Flags().StringVar(&o.tokenFile, "token-file", "", "file holding the API token")
}

// apiClient calls the server's JSON API.
type apiClient struct {
	base, token string
	http        *http.Client
}

func (o *clientOptions) client() (*apiClient, error) {
	tok := o.token
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the token file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, errors.New("no API token: set $BULWARK_TOKEN or --token-file")
	}
	if !strings.HasPrefix(o.server, "http://") && !strings.HasPrefix(o.server, "https://") {
		return nil, fmt.Errorf("--server %q: want an http:// or https:// URL", o.server)
	}
	return &apiClient{base: strings.TrimRight(o.server, "/"), token: tok, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// do sends body (nil: none) as JSON and decodes the answer into out (nil:
// discarded); a non-2xx answer is an error with the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("calling %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (HTTP %d)", method, path, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}
