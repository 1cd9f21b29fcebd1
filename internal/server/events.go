package server

import (
	"context"
	"log/slog"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/notify"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// events publishes certification changes as notifications (queued jobs
// the dispatcher delivers). A change is committed before it is published;
// a failure to queue is logged, the change stands (docs/notifications.md).
type events struct {
	store   *store.Store
	handler *api.Handler
	log     *slog.Logger
}

// revoked publishes each revocation with its repository's rollback
// target, computed after the whole batch so it never names a digest the
// same run revoked.
func (e *events) revoked(ctx context.Context, revs []reeval.Revocation) {
	eng := &reeval.Engine{Store: e.store}
	targets := map[string]string{}
	for _, rv := range revs {
		img, err := e.store.Image(ctx, rv.Digest)
		if err != nil {
			e.log.Error("publishing a revocation", "digest", rv.Digest, "err", err)
			continue
		}
		target, ok := targets[img.Repository]
		if !ok {
			if target, err = eng.RollbackTarget(ctx, img.Repository); err != nil {
				e.log.Error("computing a rollback target", "repository", img.Repository, "err", err)
			}
			targets[img.Repository] = target
		}
		ev, err := api.RevocationEvent(ctx, e.store, rv.Digest, rv.Reason, rv.Time, target)
		if err != nil {
			e.log.Error("publishing a revocation", "digest", rv.Digest, "err", err)
			continue
		}
		e.handler.Notify(ctx, ev)
	}
}

// changed is judgment's onChange: a grant or a revocation by a scan.
func (e *events) changed(ctx context.Context, c store.Certification, repository string) {
	switch c.Status {
	case store.Revoked:
		e.revoked(ctx, []reeval.Revocation{{Digest: c.Digest, Reason: c.Reason, Time: c.Updated}})
	case store.Certified:
		var tags []string
		if ts, err := e.store.Tags(ctx, repository); err == nil {
			for _, t := range ts {
				if t.Digest == c.Digest {
					tags = append(tags, t.Repository+":"+t.Tag)
				}
			}
		}
		e.handler.Notify(ctx, notify.Granted(notify.Grant{Digest: c.Digest, Repository: repository, Tags: tags, Reason: c.Reason, Time: c.Updated}))
	}
}
