package api

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-sec/bulwark/internal/audit"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/match"
	"github.com/bulwark-sec/bulwark/internal/nodeauth"
	"github.com/bulwark-sec/bulwark/internal/policy"
	"github.com/bulwark-sec/bulwark/internal/reeval"
	"github.com/bulwark-sec/bulwark/internal/sbom"
	"github.com/bulwark-sec/bulwark/internal/seal"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Store is what the handlers need from the store.
type Store interface {
	Authenticate(ctx context.Context, token string) (role string, id int64, err error)
	CreateToken(ctx context.Context, name, role string) (id int64, token string, err error)
	Image(ctx context.Context, digest string) (store.Image, error)
	ListImages(ctx context.Context, repository string) ([]store.Image, error)
	ImagesPage(ctx context.Context, repository string, pos *store.ImagePos, limit int) ([]store.Image, error)
	AuditPage(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error)
	Tags(ctx context.Context, repository string) ([]store.Tag, error)
	Inventory(ctx context.Context, digest string) (*sbom.SBOM, error)
	EnqueueJob(ctx context.Context, kind string, payload []byte, runAfter time.Time) (int64, error)
	Job(ctx context.Context, id int64) (*store.Job, error)
	RegistryStore
	WebhookStore
	ApplicationStore
	HygieneStore
	AuditStore
	CertificationLister
	RuntimeStore
	FuzzCampaignStore
	ResponseStore
	reeval.Store // DigestsFor, Certification, Revoke
	SetCertification(ctx context.Context, digest, status, reason string) error
	LatestDecision(ctx context.Context, digest string) (*policy.Decision, error)
}

// JobScan is the kind of the job POST /api/v1/scans queues.
const JobScan = "scan"

// ScanPayload is the payload of a scan job.
type ScanPayload struct {
	Image string `json:"image"` // host/repo:tag or host/repo@digest
}

// Handler serves the API.
type Handler struct {
	store   Store
	auditor *Auditor
	metrics *Metrics
	log     *slog.Logger
	handler http.Handler

	advisory AdvisoryUpdater // nil until UseAdvisoryUpdater
	sealKey  *seal.Key       // nil until UseSealKey

	advisorySource match.Source // nil until UseAdvisorySource
	advisoryStatus func(context.Context) (AdvisoryStatus, error)
	memo           findingsMemo

	limits  Limits        // UseLimits; New sets the defaults
	buckets *buckets      // per-token rate limits
	matches chan struct{} // findings matches running

	instances   Instances       // nil until UseInstances
	identity    *identityRoutes // nil until UseIdentity
	secrets     SecretStore     // nil until UseSecrets
	governance  Governance      // nil until UseGovernance
	fleet       *fleet.Index    // UseFleet; an empty one when nil
	fleetOnce   sync.Once
	wakeRespond func()
	hosts       hostInventories // hostinventory.go
	nodeImages  NodeImages      // nil until UseNodeImages (agentallowlists.go)
	tokenNames  sync.Map        // token id -> name, for nodeBound (nodebound.go)

	agents AgentAuthenticator // nil until UseAgentAuth (agentauth.go)
}

// New returns the API over st. Mutations are audited through auditor;
// metrics may be shared with the workers; log nil means slog.Default().
func New(st Store, auditor *Auditor, metrics *Metrics, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = &Metrics{}
	}
	h := &Handler{store: st, auditor: auditor, metrics: metrics, log: log}
	h.UseLimits(Limits{})
	mux := http.NewServeMux()
	for _, rt := range h.routes() {
		mux.Handle(rt.pattern, render(log, rt.handle))
	}
	h.handler = metrics.instrument(log, mux)
	return h
}

// UseSealKey gives the API the server's secret key, which seals registry
// credentials and webhook secrets before they are stored.
func (h *Handler) UseSealKey(k *seal.Key) { h.sealKey = k }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

type route struct {
	pattern string
	role    string // "" means no authentication
	handle  handlerFunc
}

// routes is every route of the API, with the role it requires.
func (h *Handler) routes() []route {
	rts := []route{
		{"GET /healthz", "", h.healthz},
		{"GET /metrics", "", h.serveMetrics},
		{"GET /api/v1/openapi.json", "", h.openAPI},
		{"GET /api/v1/images", store.RoleViewer, h.listImages},
		{"GET /api/v1/images/{digest}", store.RoleViewer, h.getImage},
		{"GET /api/v1/images/{digest}/findings", store.RoleViewer, h.findings},
		{"GET /api/v1/images/{digest}/signatures", store.RoleViewer, h.signatures},
		{"GET /api/v1/jobs/{id}", store.RoleViewer, h.getJob},
		{"GET /api/v1/audit", store.RoleAdmin, h.listAudit},
		{"POST /api/v1/scans", store.RoleOperator, h.createScan},
		{"POST /api/v1/tokens", store.RoleAdmin, h.createToken},
		{"GET /api/v1/registries", store.RoleViewer, h.listRegistries},
		{"POST /api/v1/registries", store.RoleAdmin, h.createRegistry},
		{"POST /api/v1/notifications/registry", store.RoleOperator, h.registryNotification},
		{"POST /api/v1/advisories/import", store.RoleAdmin, h.importAdvisories},
		{"POST /api/v1/images/{digest}/certification", store.RoleAdmin, h.setCertification},
		{"GET /api/v1/certifications", store.RoleViewer, h.listCertifications},
		{"GET /api/v1/repositories/{path...}", store.RoleViewer, h.repository},
		{"GET /api/v1/applications", store.RoleViewer, h.listApplications},
		{"POST /api/v1/applications", store.RoleAdmin, h.createApplication},
		{"GET /api/v1/applications/{name}", store.RoleViewer, h.getApplication},
		{"PUT /api/v1/applications/{name}", store.RoleAdmin, h.replaceApplication},
		{"DELETE /api/v1/applications/{name}", store.RoleAdmin, h.deleteApplication},
		{"GET /api/v1/hygiene/repositories", store.RoleViewer, h.hygieneRepositories},
		{"GET /api/v1/hygiene/stale", store.RoleViewer, h.hygieneStale},
		{"GET /api/v1/hygiene/untagged", store.RoleViewer, h.hygieneUntagged},
		{"GET /api/v1/hygiene/removal", store.RoleViewer, h.hygieneRemoval},
		{"GET /api/v1/revocations", store.RoleViewer, h.listRevocations},
		{"GET /api/v1/webhooks", store.RoleViewer, h.listWebhooks},
		{"POST /api/v1/webhooks", store.RoleAdmin, h.createWebhook},
		{"DELETE /api/v1/webhooks/{name}", store.RoleAdmin, h.deleteWebhook},
		{"POST /api/v1/webhooks/{name}/test", store.RoleOperator, h.testWebhook},
		{"GET /api/v1/webhooks/deliveries", store.RoleViewer, h.listDeliveries},
		{"POST /api/v1/agent/events", store.RoleOperator, h.agentEvents},
		{"POST /api/v1/agent/heartbeat", store.RoleOperator, h.agentHeartbeat},
		{"GET /api/v1/runtime/events", store.RoleViewer, h.listRuntimeEvents},
		{"GET /api/v1/nodes", store.RoleViewer, h.listNodes},
		{"PUT /api/v1/applications/{name}/api", store.RoleAdmin, h.putAPIRegistration},
		{"GET /api/v1/applications/{name}/api", store.RoleViewer, h.getAPIRegistration},
		{"DELETE /api/v1/applications/{name}/api", store.RoleAdmin, h.deleteAPIRegistration},
		{"POST /api/v1/applications/{name}/fuzz-campaigns", store.RoleOperator, h.createFuzzCampaign},
		{"GET /api/v1/applications/{name}/fuzz-campaigns", store.RoleViewer, h.listFuzzCampaigns},
		{"GET /api/v1/applications/{name}/fuzz-campaigns/{id}", store.RoleViewer, h.getFuzzCampaign},
		{"POST /api/v1/instances/{id}/challenge", store.RoleOperator, h.instanceChallenge},
		{"POST /api/v1/instances", store.RoleOperator, h.registerInstance},
		{"GET /api/v1/instances", store.RoleViewer, h.listInstances},
		{"GET /api/v1/instances/{id}", store.RoleViewer, h.getInstance},
		{"GET /api/v1/identity/bundle", "", h.identityBundle},
		{"POST /api/v1/identity/x509", store.RoleOperator, h.issueX509},
		{"POST /api/v1/identity/jwt", store.RoleOperator, h.issueJWT},
		{"GET /api/v1/identity/changes", store.RoleOperator, h.identityChanges},
		{"GET /api/v1/identity/decisions", store.RoleViewer, h.identityDecisions},
		{"GET /api/v1/identity/bundles", "", h.federatedBundles},
		{"GET /api/v1/secrets", store.RoleOperator, h.listSecrets},
		{"POST /api/v1/secrets", store.RoleAdmin, h.createSecret},
		{"GET /api/v1/secrets/{name}", store.RoleOperator, h.getSecret},
		{"PUT /api/v1/secrets/{name}", store.RoleAdmin, h.replaceSecret},
		{"DELETE /api/v1/secrets/{name}", store.RoleAdmin, h.deleteSecret},
		{"POST /api/v1/secrets/{name}/rotate", store.RoleAdmin, h.rotateSecret},
		{"PUT /api/v1/secrets/{name}/policy", store.RoleAdmin, h.setSecretPolicy},
		{"GET /api/v1/governance/catalogue", store.RoleViewer, h.governanceCatalogue},
		{"POST /api/v1/governance/flows", store.RoleOperator, h.recordFlows},
		{"GET /api/v1/governance/report", store.RoleViewer, h.governanceReport},
		{"POST /api/v1/agent/secrets", store.RoleOperator, h.agentSecrets},
		{"GET /api/v1/vulnerabilities/{id}/running", store.RoleViewer, h.runningVulnerability},
		{"GET /api/v1/runtime/workloads", store.RoleViewer, h.listWorkloads},
		{"GET /api/v1/runtime/nodes", store.RoleViewer, h.listFleetNodes},
		{"GET /api/v1/runtime/responses", store.RoleViewer, h.listResponses},
		{"POST /api/v1/agent/host-inventory", store.RoleOperator, h.agentHostInventory},
		{"DELETE /api/v1/instances/{id}", store.RoleAdmin, h.retireInstance},
		{"GET /api/v1/agent/allowlists/{digest}", store.RoleOperator, h.agentAllowlist},
	}
	for i := range rts {
		if rts[i].role != "" {
			rts[i].handle = h.authorize(rts[i].role, h.nodeScoped(rts[i].pattern, h.limit(rts[i].pattern, rts[i].handle)))
		}
	}
	return rts
}

var roleRank = map[string]int{store.RoleViewer: 1, store.RoleOperator: 2, store.RoleAdmin: 3}

type principalKey struct{}

// Principal is the authenticated caller: an API token, or an agent's
// service account token (agentauth.go), which has no id.
type Principal struct {
	TokenID int64
	Role    string
	// Agent is set for an agent authenticated by its pod's service account
	// token: it speaks for Agent.Node only.
	Agent *nodeauth.Agent
}

// Actor is how the audit log names the caller.
func (p Principal) Actor() string {
	if p.Agent != nil {
		return p.Agent.Actor()
	}
	return "token:" + strconv.FormatInt(p.TokenID, 10)
}

// bucket names the caller's rate limit bucket: the token's, or the node's
// for an agent's service account token (a rotated token keeps it).
func (p Principal) bucket() string {
	if p.Agent != nil {
		return "agent-node:" + p.Agent.Node
	}
	return "token:" + strconv.FormatInt(p.TokenID, 10)
}

func principal(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// authorize requires a bearer token whose role is at least role: 401
// without a valid token, 403 with too low a role.
func (h *Handler) authorize(role string, next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark"`)
			return errorf(http.StatusUnauthorized, nil, "missing bearer token")
		}
		if h.agents != nil && !strings.HasPrefix(token, store.TokenPrefix) {
			return h.authorizeAgent(w, r, role, token, next)
		}
		got, id, err := h.store.Authenticate(r.Context(), token)
		if errors.Is(err, store.ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark", error="invalid_token"`)
			return errorf(http.StatusUnauthorized, err, "invalid token")
		}
		if err != nil {
			return err
		}
		if roleRank[got] < roleRank[role] {
			return errorf(http.StatusForbidden, fmt.Errorf("token %d has role %s", id, got), "this call needs the %s role", role)
		}
		ctx := context.WithValue(r.Context(), principalKey{}, Principal{TokenID: id, Role: got})
		return next(w, r.WithContext(ctx))
	}
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (h *Handler) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	var b strings.Builder
	if err := h.metrics.write(r.Context(), &b); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	io.WriteString(w, b.String())
	return nil
}

//go:embed openapi.json
var openAPIDoc []byte

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(servedOpenAPI())
	return nil
}

// listImages serves GET /api/v1/images[?repository=R], paged: a
// repository's images newest created first, or every image most recently
// seen first.
func (h *Handler) listImages(w http.ResponseWriter, r *http.Request) error {
	var pos store.ImagePos
	limit, paged, err := pageParams(r, &pos)
	if err != nil {
		return err
	}
	repo := r.URL.Query().Get("repository")
	var after *store.ImagePos
	if paged {
		after = &pos
	}
	// One more than asked: whether there is a next page.
	imgs, err := h.store.ImagesPage(r.Context(), repo, after, limit+1)
	if err != nil {
		return err
	}
	out := map[string]any{"images": imgs}
	if len(imgs) > limit {
		imgs = imgs[:limit]
		out["images"], out["next"] = imgs, cursor(store.ImagePosOf(imgs[limit-1], repo))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// CountImages is the images-stored gauge: SELECT COUNT(*), portable SQL.
func CountImages(db *sql.DB) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var n int64
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images`).Scan(&n)
		return n, err
	}
}

// ImageDetail is GET /api/v1/images/{digest}.
type ImageDetail struct {
	store.Image
	Distro   *sbom.Distro `json:"distro,omitempty"`
	Packages int          `json:"packages"` // packages in the inventory; -1 when none is stored
	Tags     []string     `json:"tags"`     // repository:tag names pointing at the digest
	// Certification is the digest's certification state; nil when it was
	// never judged.
	Certification *store.Certification `json:"certification,omitempty"`
	// Decision is the latest policy decision; nil when none.
	Decision *policy.Decision `json:"decision,omitempty"`
}

func (h *Handler) getImage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	digest := r.PathValue("digest")
	img, err := h.store.Image(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "image %s not found", digest)
	}
	if err != nil {
		return err
	}
	d := ImageDetail{Image: img, Packages: -1, Tags: []string{}}
	inv, err := h.store.Inventory(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		d.Packages, d.Distro = len(inv.Packages), inv.Distro
	}
	tags, err := h.store.Tags(ctx, img.Repository)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if t.Digest == digest {
			d.Tags = append(d.Tags, t.Repository+":"+t.Tag)
		}
	}
	switch c, err := h.store.Certification(ctx, digest); {
	case err == nil:
		d.Certification = &c
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	switch dec, err := h.store.LatestDecision(ctx, digest); {
	case err == nil:
		d.Decision = dec
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// JobView is a job as the API shows it: the payload as JSON.
type JobView struct {
	*store.Job
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, err, "job id %q is not a number", r.PathValue("id"))
	}
	j, err := h.store.Job(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, err, "job %d not found", id)
	}
	if err != nil {
		return err
	}
	v := JobView{Job: j}
	if json.Valid(j.Payload) {
		v.Payload = j.Payload
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (h *Handler) createScan(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req ScanPayload
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Image == "" {
		return errorf(http.StatusBadRequest, nil, `"image" is required`)
	}
	ref, err := name.ParseReference(req.Image)
	if err != nil {
		return errorf(http.StatusBadRequest, err, "parsing image reference %q: %v", req.Image, err)
	}
	payload, _ := json.Marshal(ScanPayload{Image: ref.Name()})
	var id int64
	err = h.auditor.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		var err error
		// A scan of the same reference still pending is reused.
		if id, _, err = tx.EnqueueJobOnce(ctx, JobScan, payload, time.Time{}); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(map[string]any{"job": id, "kind": JobScan, "image": ref.Name()})
		return []audit.Entry{{Actor: principal(ctx).Actor(), Action: "scan.request", Object: ref.Name(), After: after}}, nil
	})
	if err != nil {
		return err
	}
	h.log.Info("scan queued", "job", id, "image", ref.Name(), "actor", principal(ctx).Actor())
	w.Header().Set("Location", "/api/v1/jobs/"+strconv.FormatInt(id, 10))
	writeJSON(w, http.StatusAccepted, map[string]any{"job": id, "image": ref.Name(), "state": store.JobQueued})
	return nil
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// TokenCreated is the answer: the token is shown only here.
type TokenCreated struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Role  string `json:"role"`
	Token string `json:"token"`
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req TokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return errorf(http.StatusBadRequest, nil, `"name" is required`)
	}
	if roleRank[req.Role] == 0 {
		return errorf(http.StatusBadRequest, nil, "unknown role %q (want viewer, operator or admin)", req.Role)
	}
	created, err := CreateToken(ctx, h.auditor, principal(ctx).Actor(), req.Name, req.Role)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, created)
	return nil
}

// CreateToken creates an API token and audits it as actor ("token:3" from
// the API, "cli:<user>" from `bulwark server token create`), in one
// transaction of a's store. The audit entry records id, name and role,
// never the token.
func CreateToken(ctx context.Context, a *Auditor, actor, name, role string) (TokenCreated, error) {
	var (
		id    int64
		token string
	)
	err := a.Do(ctx, func(tx *store.Store) ([]audit.Entry, error) {
		var err error
		if id, token, err = tx.CreateToken(ctx, name, role); err != nil {
			return nil, err
		}
		after, _ := json.Marshal(map[string]any{"id": id, "name": name, "role": role})
		return []audit.Entry{{Actor: actor, Action: "token.create", Object: "token:" + strconv.FormatInt(id, 10), After: after}}, nil
	})
	if err != nil {
		return TokenCreated{}, err
	}
	return TokenCreated{ID: id, Name: name, Role: role, Token: token}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
