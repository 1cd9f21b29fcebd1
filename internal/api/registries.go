package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/sign"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// RegistryStore is what the registry and notification routes need.
type RegistryStore interface {
	PutRegistry(ctx context.Context, r store.Registry) (int64, error)
	ListRegistries(ctx context.Context) ([]store.Registry, error)
	AddRepository(ctx context.Context, registryID int64, name string) error
	Repositories(ctx context.Context, registryID int64) ([]string, error)
	SetTag(ctx context.Context, repository, tag, digest string) error
}

// RegistryRequest is the body of POST /api/v1/registries. Credentials are
// write-only: sealed with the server's secret key before they are stored,
// never returned. Omitted on an update, the stored ones are kept; a
// registry without any uses the server's Docker config and credential
// helpers.
type RegistryRequest struct {
	Name         string               `json:"name"`
	URL          string               `json:"url"`
	Repositories []string             `json:"repositories"`
	Credentials  *RegistryCredentials `json:"credentials,omitempty"`
}

// RegistryCredentials are a registry's username and password (or token).
type RegistryCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// CredentialsContext is the associated data registry credentials are
// sealed with: a sealed value copied to another registry's row does not
// open.
func CredentialsContext(registry string) string { return "registry:" + registry }

// RegistryView is a registry as the API shows it.
type RegistryView struct {
	ID             int64     `json:"id"`
	Name           string    `json:"name"`
	URL            string    `json:"url"`
	Repositories   []string  `json:"repositories"`
	HasCredentials bool      `json:"hasCredentials"`
	Created        time.Time `json:"created"`
}

// RegistryHost parses a registry URL ("https://r.example", "r.example:5000",
// "http://127.0.0.1:5000") into its host and whether plain HTTP was asked
// for.
func RegistryHost(raw string) (host string, plainHTTP bool, err error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, fmt.Errorf("parsing registry URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("registry URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("registry URL %q: want scheme://host[:port] only", raw)
	}
	if _, err := name.NewRegistry(u.Host); err != nil {
		return "", false, fmt.Errorf("registry URL %q: %w", raw, err)
	}
	return u.Host, u.Scheme == "http", nil
}

func (h *Handler) createRegistry(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req RegistryRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return errorf(http.StatusBadRequest, nil, `"name" is required`)
	}
	if req.URL == "" {
		return errorf(http.StatusBadRequest, nil, `"url" is required`)
	}
	host, _, err := RegistryHost(req.URL)
	if err != nil {
		return errorf(http.StatusBadRequest, err, "%v", err)
	}
	for _, repo := range req.Repositories {
		if strings.ContainsAny(repo, "*?[") {
			if !validRepositoryGlob(repo) {
				return errorf(http.StatusBadRequest, nil, "invalid repository pattern %q", repo)
			}
			continue
		}
		if _, err := name.NewRepository(host + "/" + repo); err != nil || repo == "" || strings.Contains(repo, ":") {
			return errorf(http.StatusBadRequest, err, "invalid repository name %q", repo)
		}
	}
	var sealed []byte
	if req.Credentials != nil {
		if h.sealKey == nil {
			return errorf(http.StatusServiceUnavailable, nil, "this server has no secret key to store credentials with")
		}
		plain, _ := json.Marshal(req.Credentials)
		if sealed, err = h.sealKey.Seal(plain, CredentialsContext(req.Name)); err != nil {
			return err
		}
	}
	var v RegistryView
	err = h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		// Before, for the audit entry: the registry as it was, if any.
		var before []byte
		old, err := tx.Registry(ctx, req.Name)
		switch {
		case err == nil:
			ov, err := registryView(ctx, tx, old)
			if err != nil {
				return nil, err
			}
			before, _ = json.Marshal(ov)
			// Stored credentials are kept on an update without any, but
			// only for the same host: they must not follow a URL change
			// to another registry.
			if req.Credentials == nil {
				if oldHost, _, _ := RegistryHost(old.URL); oldHost == host {
					sealed = old.Credentials
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		id, err := tx.PutRegistry(ctx, store.Registry{Name: req.Name, URL: req.URL, Credentials: sealed})
		if err != nil {
			return nil, err
		}
		for _, repo := range req.Repositories {
			if err := tx.AddRepository(ctx, id, repo); err != nil {
				return nil, err
			}
		}
		reg, err := tx.Registry(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		if v, err = registryView(ctx, tx, reg); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(v)
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "registry.put", Object: "registry:" + req.Name, Before: before, After: after}}, nil
	})
	if err != nil {
		return err
	}
	h.log.Info("registry stored", "registry", req.Name, "url", req.URL, "actor", principal(ctx).Actor())
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// repositoryGlobChars are what a watched repository pattern may hold:
// a repository name's characters and store.MatchRepository's glob syntax.
var repositoryGlobChars = regexp.MustCompile(`^[a-z0-9._/*?\[\]^!-]+$`)

// validRepositoryGlob reports whether a registered repository pattern is
// one the watcher can match (store.MatchRepository: path.Match per
// segment, "**" for any number of segments).
func validRepositoryGlob(p string) bool {
	if !repositoryGlobChars.MatchString(p) || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if _, err := path.Match(seg, ""); err != nil {
			return false
		}
	}
	return true
}

// repositoryLister is what registryView reads.
type repositoryLister interface {
	Repositories(ctx context.Context, registryID int64) ([]string, error)
}

func registryView(ctx context.Context, st repositoryLister, reg store.Registry) (RegistryView, error) {
	repos, err := st.Repositories(ctx, reg.ID)
	if err != nil {
		return RegistryView{}, err
	}
	return RegistryView{ID: reg.ID, Name: reg.Name, URL: reg.URL, Repositories: nonNil(repos),
		HasCredentials: len(reg.Credentials) > 0, Created: reg.Created}, nil
}

func (h *Handler) listRegistries(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	regs, err := h.store.ListRegistries(ctx)
	if err != nil {
		return err
	}
	out := make([]RegistryView, 0, len(regs))
	for _, reg := range regs {
		v, err := registryView(ctx, h.store, reg)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"registries": out})
	return nil
}

// Manifest media types: a push event of one of these is a new digest to
// scan; other pushes (blobs) are ignored.
var manifestTypes = map[string]bool{
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.oci.image.index.v1+json":                   true,
}

// NotificationEnvelope is the CNCF distribution notification envelope,
// reduced to the fields used; others are ignored.
type NotificationEnvelope struct {
	Events []NotificationEvent `json:"events"`
}

// NotificationEvent is one event of an envelope.
type NotificationEvent struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Target struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

// maxNotification bounds a notification body; distribution batches events.
const maxNotification = 1 << 20

// registryNotification queues a scan of host/repository@digest for every
// manifest push of the envelope (and points target.tag at the digest when
// set), and answers 202 with the jobs. A scan of the same reference that is
// still queued or running is answered instead of queueing another.
func (h *Handler) registryNotification(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxNotification+1))
	if err != nil {
		return errorf(http.StatusBadRequest, err, "reading the request body: %v", err)
	}
	if len(body) > maxNotification {
		return errorf(http.StatusRequestEntityTooLarge, nil, "notification larger than %d bytes", maxNotification)
	}
	var env NotificationEnvelope
	// Unknown envelope fields are distribution's to add; a second envelope
	// or trailing data is refused like any body.
	if err := decodeObject(body, &env, false); err != nil {
		return err
	}
	type queued struct {
		Job   int64  `json:"job"`
		Image string `json:"image"`
	}
	jobs := []queued{}
	ignored := 0
	// The tags, the scan jobs and the audit entry commit together.
	err = h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		jobs, ignored = jobs[:0], 0
		for _, ev := range env.Events {
			if ev.Action != "push" || !manifestTypes[ev.Target.MediaType] || ev.Target.Digest == "" {
				ignored++
				continue
			}
			ref, err := notificationRef(ev)
			if err != nil {
				h.log.Warn("ignoring notification event", "event", ev.ID, "err", err)
				ignored++
				continue
			}
			image := ref.Name()
			if _, _, artifact := sign.ArtifactTag(ev.Target.Tag); artifact {
				// A signature, attestation or SBOM: its tag is not one
				// of an image's, and the job names the tag, under which
				// the worker attaches it rather than scanning it.
				image = ref.Context().Name() + ":" + ev.Target.Tag
			} else if ev.Target.Tag != "" {
				tag, err := name.NewTag(ref.Context().Name() + ":" + ev.Target.Tag)
				if err != nil {
					h.log.Warn("ignoring the tag of a notification event", "event", ev.ID, "err", err)
				} else if err := tx.SetTag(ctx, tag.Context().Name(), tag.TagStr(), ref.DigestStr()); err != nil {
					return nil, err
				}
			}
			payload, _ := json.Marshal(ScanPayload{Image: image})
			// A scan of the same reference still pending (the registry
			// retrying a delivery, or a poll that found it first) is reused.
			id, _, err := tx.EnqueueJobOnce(ctx, JobScan, payload, time.Time{})
			if err != nil {
				return nil, err
			}
			jobs = append(jobs, queued{Job: id, Image: image})
		}
		if len(jobs) == 0 {
			return nil, nil
		}
		after, _ := json.Marshal(map[string]any{"jobs": jobs, "ignored": ignored})
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "registry.notification", Object: "scan", After: after}}, nil
	})
	if err != nil {
		return err
	}
	if len(jobs) > 0 {
		h.log.Info("registry notification", "queued", len(jobs), "ignored", ignored, "actor", principal(ctx).Actor())
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"jobs": jobs, "ignored": ignored})
	return nil
}

// notificationRef is host/repository@digest of a push event. The host is
// the request's Host header as the registry saw it, else the target URL's.
func notificationRef(ev NotificationEvent) (name.Digest, error) {
	host := ev.Request.Host
	if host == "" && ev.Target.URL != "" {
		if u, err := url.Parse(ev.Target.URL); err == nil {
			host = u.Host
		}
	}
	if host == "" {
		return name.Digest{}, errors.New("no registry host in the event")
	}
	return name.NewDigest(host + "/" + ev.Target.Repository + "@" + ev.Target.Digest)
}
