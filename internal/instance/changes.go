package instance

import (
	"encoding/json"
	"slices"

	"github.com/bulwark-sec/bulwark/internal/audit"
)

// ActionImage is the audit action that names, as its object, an image
// digest whose confidential instances changed trust (registered, verified,
// failed, stale, revoked). The identity change feed reads it beside the
// certification changes, so agents ask again for the containers of that
// image and an identity that needs the instance is withdrawn (or issued)
// within the feed's poll interval, on every replica.
const ActionImage = "instance.image"

// imageEntry is the ActionImage entry of image: the instances of it that
// became status.
func imageEntry(actor, image string, ids []string, status Status) audit.Entry {
	after, _ := json.Marshal(map[string]any{"status": status, "instances": ids})
	return audit.Entry{Actor: actor, Action: ActionImage, Object: image, After: after}
}

// imageEntries are the ActionImage entries of the images of instances ids,
// one per image.
func (t *Tracker) imageEntries(actor string, ids []string, status Status) []audit.Entry {
	byImage := map[string][]string{}
	t.mu.RLock()
	for _, id := range ids {
		if in, ok := t.byID[id]; ok && in.Image != "" {
			byImage[in.Image] = append(byImage[in.Image], id)
		}
	}
	t.mu.RUnlock()
	images := make([]string, 0, len(byImage))
	for im := range byImage {
		images = append(images, im)
	}
	slices.Sort(images)
	out := make([]audit.Entry, 0, len(images))
	for _, im := range images {
		out = append(out, imageEntry(actor, im, byImage[im], status))
	}
	return out
}
