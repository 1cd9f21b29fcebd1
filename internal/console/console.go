package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/api"
	"github.com/bulwark-sec/bulwark/internal/fleet"
	"github.com/bulwark-sec/bulwark/internal/store"
)

// Store is what the console reads.
type Store interface {
	Authenticate(ctx context.Context, token string) (role string, id int64, err error)
	ActiveToken(ctx context.Context, id int64) (role string, err error)
	ListRegistries(ctx context.Context) ([]store.Registry, error)
	Repositories(ctx context.Context, registryID int64) ([]string, error)
	ListApplications(ctx context.Context) ([]store.Application, error)
	HygieneRepositories(ctx context.Context, repository string) ([]store.RepositoryReport, error)
	StaleImages(ctx context.Context, olderThan time.Duration) ([]store.ImageReport, error)
	UntaggedImages(ctx context.Context) ([]store.ImageReport, error)
	RemovalImages(ctx context.Context) ([]store.ImageReport, error)
	RevokedImages(ctx context.Context) ([]store.RevokedImage, error)
	DetailStore
	RuntimeStore
	SessionStore
}

// Options configure New. The zero value serves under /ui over plain
// HTTP.
type Options struct {
	// Prefix is the path the console is mounted at; default "/ui".
	Prefix string
	// SecureCookies marks the login cookie Secure even when the request
	// did not arrive over TLS (the server is behind a TLS-terminating
	// proxy). Requests over TLS always get Secure cookies.
	SecureCookies bool
	// SessionLength is a session's absolute lifetime (and the cookie's
	// Max-Age); default 8 hours.
	SessionLength time.Duration
	// SessionIdle ends a session unused for that long; default 1 hour.
	SessionIdle time.Duration
	// MaxSessions bounds the sessions kept in the store, the oldest evicted
	// first; default 10,000.
	MaxSessions int
	// Now is nil for time.Now (tests move the clock).
	Now func() time.Time
	// Logger is nil for slog.Default().
	Logger *slog.Logger
	// Advisories is the advisory database the image and vulnerability
	// pages match stored inventories against (the server's *vulndb.DB);
	// nil shows no vulnerability list.
	Advisories Advisories
	// AdvisoryStatus names the advisory database and says when its data
	// cannot back a finding (the function the API's findings use); nil
	// shows neither.
	AdvisoryStatus func(context.Context) (api.AdvisoryStatus, error)
	// Instances lists confidential instances; nil says they are not
	// enabled.
	Instances Instances
	// Running is the server's running inventory the runtime page shows;
	// nil shows no nodes or workloads.
	Running *fleet.Index
	// Governance builds the data governance report; nil says it is not
	// enabled.
	Governance Governance
}

// CookieName is the login cookie. It holds a random session id the
// server maps to the token's id, never the API token (docs/console.md).
const CookieName = "bulwark_console"

// maxLoginBody bounds the login form.
const maxLoginBody = 4 << 10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

type console struct {
	st       Store
	opts     Options
	sessions *sessions
	log      *slog.Logger
	pages    map[string]*template.Template
	static   http.Handler
}

// New returns the console over st. Mount it at opts.Prefix + "/"; every
// path it serves starts with opts.Prefix.
func New(st Store, opts Options) http.Handler {
	if opts.Prefix == "" {
		opts.Prefix = "/ui"
	}
	opts.Prefix = strings.TrimSuffix(opts.Prefix, "/")
	if opts.SessionLength <= 0 {
		opts.SessionLength = defaultSessionLength
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = defaultSessionIdle
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = defaultMaxSessions
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &console{st: st, opts: opts, log: opts.Logger, pages: parsePages(opts.Prefix),
		sessions: &sessions{st: st, max: opts.MaxSessions, idle: opts.SessionIdle, absolute: opts.SessionLength, now: opts.Now}}
	sub, _ := fs.Sub(staticFS, "static")
	c.static = http.StripPrefix(opts.Prefix+"/static/", http.FileServerFS(sub))

	mux := http.NewServeMux()
	p := opts.Prefix
	mux.Handle("GET "+p+"/static/", c.static)
	mux.HandleFunc("GET "+p+"/login", c.loginForm)
	// Login and logout are POSTs: refused when a browser says they come
	// from another origin (login CSRF); SameSite=Strict covers the rest.
	cop := http.NewCrossOriginProtection()
	mux.Handle("POST "+p+"/login", cop.Handler(http.HandlerFunc(c.login)))
	mux.Handle("POST "+p+"/logout", cop.Handler(http.HandlerFunc(c.logout)))
	mux.HandleFunc("GET "+p+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"/repositories", http.StatusSeeOther)
	})
	for _, pg := range []struct {
		path, name string
		fn         func(*http.Request) (any, error)
	}{
		{"/repositories", "repositories", c.repositories},
		{"/repositories/{path...}", "repository", c.repository},
		{"/images/{digest}", "image", c.image},
		{"/vulnerabilities/{id}", "vulnerability", c.vulnerability},
		{"/hygiene", "hygiene", c.hygiene},
		{"/revocations", "revocations", c.revocations},
		{"/applications", "applications", c.applications},
		{"/registries", "registries", c.registries},
		{"/instances", "instances", c.instances},
		{"/runtime", "runtime", c.runtime},
		{"/governance", "governance", c.governance},
	} {
		mux.Handle("GET "+p+pg.path, c.authenticated(func(w http.ResponseWriter, r *http.Request) {
			data, err := pg.fn(r)
			var nf *notFoundError
			switch {
			case errors.As(err, &nf):
				c.render(w, r, http.StatusNotFound, "notfound", nf)
			case err != nil:
				c.fail(w, r, err)
			default:
				c.render(w, r, http.StatusOK, pg.name, data)
			}
		}))
	}
	return securityHeaders(mux)
}

// Mount serves the console (New(st, opts)) under opts.Prefix and api
// everywhere else: the server's one HTTP handler.
func Mount(api http.Handler, st Store, opts Options) http.Handler {
	if opts.Prefix == "" {
		opts.Prefix = "/ui"
	}
	mux := http.NewServeMux()
	mux.Handle(strings.TrimSuffix(opts.Prefix, "/")+"/", New(st, opts))
	mux.Handle("/", api)
	return mux
}

// securityHeaders forbids scripts, framing, foreign form targets and
// caching for every console response. No page needs a script.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type principalKey struct{}

// principal is the logged-in token's role and id.
type principal struct {
	Role string
	ID   int64
}

// authenticated requires the login cookie to name a live session (not
// idle for SessionIdle, younger than SessionLength) whose token the store
// still holds unrevoked (any role). Otherwise the session is forgotten, the
// cookie cleared and the browser sent to the login form.
func (c *console) authenticated(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(CookieName)
		if err != nil || ck.Value == "" {
			http.Redirect(w, r, c.opts.Prefix+"/login", http.StatusSeeOther)
			return
		}
		ses, ok, err := c.sessions.lookup(r.Context(), ck.Value)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if !ok {
			c.toLogin(w, r)
			return
		}
		role, err := c.st.ActiveToken(r.Context(), ses.TokenID)
		if errors.Is(err, store.ErrUnauthenticated) {
			if err := c.sessions.end(r.Context(), ck.Value); err != nil {
				c.log.Warn("ending a console session", "error", err.Error())
			}
			c.log.Info("console session ended: token revoked", "token", ses.TokenID)
			c.toLogin(w, r)
			return
		}
		if err != nil {
			c.fail(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{Role: role, ID: ses.TokenID})))
	})
}

// toLogin clears the cookie and sends the browser to the login form.
func (c *console) toLogin(w http.ResponseWriter, r *http.Request) {
	c.clearCookie(w, r)
	http.Redirect(w, r, c.opts.Prefix+"/login", http.StatusSeeOther)
}

func (c *console) loginForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", loginPage{})
}

type loginPage struct{ Error string }

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		c.render(w, r, http.StatusBadRequest, "login", loginPage{Error: "The form could not be read."})
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	role, id, err := c.st.Authenticate(r.Context(), token)
	if errors.Is(err, store.ErrUnauthenticated) {
		c.log.Info("console login refused", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", loginPage{Error: "That token is not valid (unknown, malformed or revoked)."})
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// A new login replaces the browser's previous session, if any.
	if ck, err := r.Cookie(CookieName); err == nil && ck.Value != "" {
		if err := c.sessions.end(r.Context(), ck.Value); err != nil {
			c.fail(w, r, err)
			return
		}
	}
	sid, err := c.sessions.create(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: sid, Path: c.opts.Prefix + "/",
		MaxAge: int(c.opts.SessionLength / time.Second), HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
	c.log.Info("console login", "token", id, "role", role)
	http.Redirect(w, r, c.opts.Prefix+"/repositories", http.StatusSeeOther)
}

// logout forgets the session server-side: the cookie, replayed, is no
// longer a session.
func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil && ck.Value != "" {
		if err := c.sessions.end(r.Context(), ck.Value); err != nil {
			c.fail(w, r, err)
			return
		}
	}
	c.toLogin(w, r)
}

func (c *console) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: c.opts.Prefix + "/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
}

func (c *console) secure(r *http.Request) bool { return r.TLS != nil || c.opts.SecureCookies }

// fail logs err and shows a generic error page: causes never reach the
// browser.
func (c *console) fail(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console request failed", "path", r.URL.Path, "err", err)
	c.render(w, r, http.StatusInternalServerError, "error", nil)
}
