package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/notify"
)

// EventType is the X-Bulwark-Event of a checkpoint delivery.
const EventType = "audit.checkpoint"

// Webhook POSTs each checkpoint (its JSON, as the checkpoint log holds it)
// to URL, with the headers of internal/notify's deliveries: the event
// type, a delivery id ("audit.checkpoint/KEYID/SEQ", the same for the same
// checkpoint), and, when Secret is set, X-Bulwark-Timestamp and the
// HMAC-SHA256 X-Bulwark-Signature that notify.VerifyRequest checks. Any
// 2xx answer is success.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client // nil: a client with a 10 s timeout
}

// Name implements Sink.
func (h Webhook) Name() string { return "webhook " + h.URL }

// Put implements Sink.
func (h Webhook) Put(ctx context.Context, c audit.Checkpoint) error {
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding checkpoint %d: %w", c.Seq, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("posting checkpoint %d to %q: %w", c.Seq, h.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(notify.HeaderEvent, EventType)
	req.Header.Set(notify.HeaderDelivery, EventType+"/"+c.KeyID+"/"+strconv.FormatInt(c.Seq, 10))
	if len(h.Secret) > 0 {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(notify.HeaderTimestamp, ts)
		req.Header.Set(notify.HeaderSignature, notify.Sign(h.Secret, ts, body))
	}
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("posting checkpoint %d: %w", c.Seq, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting checkpoint %d: the receiver answered %s", c.Seq, resp.Status)
	}
	return nil
}
