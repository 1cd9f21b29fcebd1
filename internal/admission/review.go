package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReviewBytes bounds an AdmissionReview body (the API server's own
// limit on objects is 3 MiB; reviews carry the old object too).
const maxReviewBytes = 8 << 20

func (w *Webhook) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /validate", func(rw http.ResponseWriter, r *http.Request) { w.serveReview(rw, r, false) })
	mux.HandleFunc("POST /mutate", func(rw http.ResponseWriter, r *http.Request) { w.serveReview(rw, r, true) })
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if !w.ready.Load() {
			http.Error(rw, "waiting for the first certification feed poll", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4")
		c := w.images.cache
		c.mu.RLock()
		n := len(c.verified)
		c.mu.RUnlock()
		w.metrics.write(rw, n, w.lastSync.Load())
	})
	return mux
}

// serveReview answers one AdmissionReview.
func (w *Webhook) serveReview(rw http.ResponseWriter, r *http.Request, mutate bool) {
	start := time.Now()
	defer func() {
		if mutate {
			w.metrics.mutate.observe(time.Since(start))
		} else {
			w.metrics.validate.observe(time.Since(start))
		}
	}()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil || len(body) > maxReviewBytes {
		w.metrics.errors.Add(1)
		http.Error(rw, "reading AdmissionReview: body unreadable or larger than 8 MiB", http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		w.metrics.errors.Add(1)
		msg := "decoding AdmissionReview: no request"
		if err != nil {
			msg = "decoding AdmissionReview: " + err.Error()
		}
		http.Error(rw, msg, http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.VerifyBudget)
	defer cancel()
	resp := w.Review(ctx, review.Request, mutate)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(out)
}

// Review decides one admission request: the mutating webhook's patch
// (mutate) or the validating webhook's verdict. Requests that are not
// about an evaluated kind, or are in an exempt namespace, are allowed.
func (w *Webhook) Review(ctx context.Context, req *admissionv1.AdmissionRequest, mutate bool) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return resp
	}
	if req.SubResource != "" && req.SubResource != "ephemeralcontainers" {
		return resp
	}
	if !Supported(req.Kind.Kind) || matchAny(w.cfg.Exempt, req.Namespace) {
		return resp
	}
	o, err := DecodeObject(req.Kind.Kind, req.Object.Raw)
	if err != nil {
		w.metrics.errors.Add(1)
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: "bulwark: " + err.Error()}
		return resp
	}
	if o.Namespace == "" {
		o.Namespace = req.Namespace
	}
	if o.Name == "" {
		o.Name = req.Name
	}
	var old *Object
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		// An old object that does not decode is no reason to deny: the
		// update is then judged in full, as a create.
		if old, err = DecodeObject(req.Kind.Kind, req.OldObject.Raw); err == nil {
			old.Namespace, old.Name = o.Namespace, o.Name
		} else {
			old = nil
		}
	}
	if mutate {
		ops := w.mutateChange(ctx, o, old)
		if len(ops) > 0 {
			patch, err := json.Marshal(ops)
			if err != nil {
				w.metrics.errors.Add(1)
				return resp
			}
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
		}
		w.metrics.allowed.Add(1)
		return resp
	}
	findings := w.evaluateChange(ctx, o, old)
	// Bulwark's own rules first, then the Pod Security Standards level's.
	slices.SortStableFunc(findings, func(a, b Finding) int { return strings.Compare(a.Level, b.Level) })
	var deny []string
	for _, f := range findings {
		switch f.Mode {
		case Enforce:
			deny = append(deny, f.Message())
		case Warn:
			resp.Warnings = append(resp.Warnings, f.Message())
		case Audit:
			w.log.Info("admission audit finding", "object", o.describe(), "operation", req.Operation, "user", req.UserInfo.Username, "rule", f.Rule, "message", f.Message())
		}
	}
	switch {
	case len(deny) > 0:
		w.metrics.denied.Add(1)
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
			Message: "bulwark: " + strings.Join(deny, "; ")}
		w.log.Info("admission denied", "object", o.describe(), "operation", req.Operation, "user", req.UserInfo.Username, "findings", len(deny))
	case len(resp.Warnings) > 0:
		w.metrics.warned.Add(1)
	default:
		w.metrics.allowed.Add(1)
	}
	return resp
}

// Evaluate applies every rule to o. online allows registry calls for
// images not in the cache (first sight); offline, an image is decided
// only as far as the cache and its reference allow (a tag is a finding).
//
// Evaluate judges as the serving webhook does: while a configured server's
// feed has not been reached since start (and no snapshot was loaded), an
// image not verified in this process is undecided.
func (w *Webhook) Evaluate(ctx context.Context, o *Object, online bool) []Finding {
	return w.evaluate(ctx, o, lookup{online: online && !w.offline, feedGate: true})
}

// lookup is how images are decided.
type lookup struct {
	// online allows registry calls (first sight).
	online bool
	// feedGate makes an image not verified in this process undecided
	// while the configured server's feed has not been reached since start
	// (revocations are unknown). `bulwark check` does not poll the feed
	// and does not apply it.
	feedGate bool
}

func (w *Webhook) evaluate(ctx context.Context, o *Object, lk lookup) []Finding {
	var out []Finding
	out = append(out, w.imageRules(ctx, o, lk)...)
	out = append(out, w.cfg.podRules(o)...)
	out = append(out, w.cfg.placementRules(o)...)
	out = append(out, w.cfg.ownerRules(o)...)
	out = append(out, w.confidentialRules(ctx, o, lk)...)
	return out
}

// checkImages decides each distinct image of cs once, concurrently.
func (w *Webhook) checkImages(ctx context.Context, cs []container, lk lookup) map[string]imageVerdict {
	var images []string
	for _, c := range cs {
		if !slices.Contains(images, c.Image) {
			images = append(images, c.Image)
		}
	}
	out := make(map[string]imageVerdict, len(images))
	if len(images) == 1 {
		out[images[0]] = w.images.check(ctx, images[0], lk)
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, img := range images {
		wg.Go(func() {
			v := w.images.check(ctx, img, lk)
			mu.Lock()
			out[img] = v
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (w *Webhook) imageRules(ctx context.Context, o *Object, lk lookup) []Finding {
	return w.imageRulesOf(ctx, o, o.containers(), lk)
}

// imageRulesOf applies the image rule to some containers of o.
func (w *Webhook) imageRulesOf(ctx context.Context, o *Object, cs []container, lk lookup) []Finding {
	mode := w.cfg.imageMode(o.Namespace)
	if mode == Off || len(cs) == 0 {
		return nil
	}
	verdicts := w.checkImages(ctx, cs, lk)
	var out []Finding
	for _, c := range cs {
		v := verdicts[c.Image]
		if v.Problem == "" {
			continue
		}
		m := mode
		if v.Undecided && w.cfg.FailurePolicy == FailOpen && m == Enforce {
			m = Warn
		}
		out = append(out, Finding{Rule: RuleImage, Mode: m, Container: c.Name, Image: c.Image, Path: c.Path + "/image",
			Subject: fmt.Sprintf("%s %q image %s", c.What, c.Name, c.Image), Problem: v.Problem, Fix: v.Fix})
	}
	return out
}

// Mutate returns the JSONPatch operations for o: tags pinned to the
// digests they resolve to, and the segregated pool's node selector and
// tolerations for sensitive workloads.
func (w *Webhook) Mutate(ctx context.Context, o *Object) []PatchOp {
	ops := w.pinTags(ctx, o, o.containers())
	return append(ops, w.cfg.placementPatches(o)...)
}

// pinTags returns the patches pinning the tags of cs to their certified
// digests.
func (w *Webhook) pinTags(ctx context.Context, o *Object, cs []container) []PatchOp {
	var ops []PatchOp
	if w.cfg.imageMode(o.Namespace) != Off {
		var tagged []container
		for _, c := range cs {
			if !strings.Contains(c.Image, "@") {
				tagged = append(tagged, c)
			}
		}
		if len(tagged) > 0 {
			for _, c := range tagged {
				// Only a tag whose digest is certified is pinned: an
				// uncertified one stays as written, so the validating
				// webhook's denial names the tag the user wrote.
				v := w.images.check(ctx, c.Image, lookup{online: !w.offline, feedGate: true})
				if v.Problem != "" || v.Digest == "" {
					w.log.Info("not pinning a tag", "image", c.Image, "problem", v.Problem)
					continue
				}
				ops = append(ops, PatchOp{Op: "replace", Path: c.Path + "/image", Value: pinnedImage(c.Image, v.Digest)})
			}
		}
	}
	return ops
}

// pinnedImage writes image (repo[:tag]) as repo@digest, keeping the
// repository as written so that the registry host stays as the user
// spelled it.
func pinnedImage(image, digest string) string {
	repo := image
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo + "@" + digest
}

// Check evaluates o as the two webhooks would in sequence: the mutating
// webhook's placement is applied to o first, then every rule. With
// verify, images not in the cache are resolved and verified against the
// registry; without, a tag is a finding (not pinned) and a digest passes
// the image rule.
func (w *Webhook) Check(ctx context.Context, o *Object, verify bool) []Finding {
	w.cfg.injectPlacement(o)
	return w.evaluate(ctx, o, lookup{online: verify && !w.offline})
}
