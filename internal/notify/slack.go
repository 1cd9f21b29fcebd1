package notify

import (
	"encoding/json"
	"fmt"
	"strings"
)

// SlackMessage is the body posted to a Slack-compatible incoming webhook
// (Slack, Mattermost, Rocket.Chat): Text is the notification and the
// fallback of clients that do not render Blocks.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackBlock is a Block Kit block: a section with Text, or a context with
// Elements.
type SlackBlock struct {
	Type     string       `json:"type"`
	Text     *SlackText   `json:"text,omitempty"`
	Elements []*SlackText `json:"elements,omitempty"`
}

// SlackText is a Block Kit text object.
type SlackText struct {
	Type string `json:"type"` // "mrkdwn"
	Text string `json:"text"`
}

// slackTextMax is Slack's limit on a section's text.
const slackTextMax = 3000

// Slack renders ev for a Slack-compatible webhook.
func Slack(ev Event) SlackMessage {
	text := Summary(ev)
	ctx := fmt.Sprintf("%s · %s · %s", esc(ev.Type), ev.Time.UTC().Format("2006-01-02 15:04:05Z"), esc(ev.ID))
	return SlackMessage{
		Text: text,
		Blocks: []SlackBlock{
			{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: truncate(text, slackTextMax)}},
			{Type: "context", Elements: []*SlackText{{Type: "mrkdwn", Text: ctx}}},
		},
	}
}

// Summary is the one-line human text of ev, in Slack mrkdwn with &, <
// and > escaped (event fields come from registries and advisories).
func Summary(ev Event) string {
	switch ev.Type {
	case EventRevoked:
		var r Revocation
		if json.Unmarshal(ev.Data, &r) == nil {
			s := fmt.Sprintf(":rotating_light: revoked %s%s (%s)", ref(r.Repository, r.Digest), tags(r.Tags), esc(r.Reason))
			if r.RollbackTarget != "" {
				s += fmt.Sprintf("; roll back to `%s`%s", esc(r.RollbackTarget), tags(r.RollbackTags))
			} else {
				s += "; no rollback target: no other digest of the repository passes policy"
			}
			return s
		}
	case EventGranted:
		var g Grant
		if json.Unmarshal(ev.Data, &g) == nil {
			s := fmt.Sprintf(":white_check_mark: certified %s%s", ref(g.Repository, g.Digest), tags(g.Tags))
			if g.Reason != "" {
				s += " (" + esc(g.Reason) + ")"
			}
			return s
		}
	case EventScanFailed:
		var f ScanFailure
		if json.Unmarshal(ev.Data, &f) == nil {
			return fmt.Sprintf(":warning: scan of `%s` failed after %d attempts: %s", esc(f.Image), f.Attempts, esc(f.Error))
		}
	case EventImageNew:
		var n NewImage
		if json.Unmarshal(ev.Data, &n) == nil {
			return fmt.Sprintf(":new: new image %s%s", ref(n.Repository, n.Digest), tags(n.Tags))
		}
	case EventDataAccess:
		var d DataAccess
		if json.Unmarshal(ev.Data, &d) == nil {
			svc := d.Service
			if svc == "" {
				svc = "container " + d.Container
			}
			return fmt.Sprintf(":no_entry: %s: `%s` reached `%s` (%s, %s) from node %s in %s: %s", esc(d.Kind), esc(svc), esc(d.Store),
				esc(d.Class), esc(strings.Join(d.Regulations, ", ")), esc(d.Node), esc(d.Region), esc(d.Detail))
		}
	case EventTest:
		var d TestData
		if json.Unmarshal(ev.Data, &d) == nil {
			return fmt.Sprintf(":wave: %s (webhook %s)", esc(d.Message), esc(d.Webhook))
		}
	case EventFuzzFindings:
		var f FuzzFindings
		if json.Unmarshal(ev.Data, &f) == nil {
			return fmt.Sprintf(":bug: fuzz campaign %d of `%s` (team %s): %d findings in %d requests, report %s",
				f.Campaign, esc(f.Application), esc(f.Team), len(f.Findings)+f.More, f.Requests, esc(f.Report))
		}
	}
	return fmt.Sprintf("Bulwark event %s: %s", esc(ev.Type), esc(ev.Subject))
}

// ref is repository@digest with the digest shortened to 12 hex digits.
func ref(repository, digest string) string {
	short := digest
	if algo, hex, ok := strings.Cut(digest, ":"); ok && len(hex) > 12 {
		short = algo + ":" + hex[:12] + "…"
	}
	return "`" + esc(repository) + "@" + esc(short) + "`"
}

func tags(ts []string) string {
	if len(ts) == 0 {
		return ""
	}
	return " [" + esc(strings.Join(ts, ", ")) + "]"
}

// esc escapes the three characters Slack mrkdwn gives meaning to.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
