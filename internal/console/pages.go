package console

import (
	"bytes"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-sec/bulwark/internal/store"
)

// pageNames are the templates/<name>.html files; each defines "content"
// (and "title") for templates/layout.html.
var pageNames = []string{"login", "error", "notfound", "repositories", "repository", "image", "vulnerability",
	"hygiene", "revocations", "applications", "registries", "instances", "runtime", "governance"}

// severities are the findings columns, most severe first.
var severities = []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}

var funcs = template.FuncMap{
	"short": func(digest string) string {
		algo, hex, ok := strings.Cut(digest, ":")
		if !ok || len(hex) <= 12 {
			return digest
		}
		return algo + ":" + hex[:12]
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04")
	},
	"severities": func() []string { return severities },
	"count":      func(m map[string]int, sev string) int { return m[sev] },
	"sorted":     sortedPairs,
	"lower":      strings.ToLower,
}

// sortedPairs lists m as key=value, by key.
func sortedPairs(m map[string]string) []string {
	out := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// linkFuncs are the console's addresses of its pages, under prefix: every
// state the console shows has one.
func linkFuncs(prefix string) template.FuncMap {
	return template.FuncMap{
		"imageURL": func(digest string) string { return prefix + "/images/" + url.PathEscape(digest) },
		// repoURL escapes each path segment of a repository name, which
		// comes from a registry: "?" or "#" in it stay in the path.
		"repoURL": func(repo string) string {
			segs := strings.Split(repo, "/")
			for i, s := range segs {
				segs[i] = url.PathEscape(s)
			}
			return prefix + "/repositories/" + strings.Join(segs, "/")
		},
		"vulnURL": func(id string) string { return prefix + "/vulnerabilities/" + url.PathEscape(id) },
	}
}

func parsePages(prefix string) map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).Funcs(linkFuncs(prefix)).ParseFS(templateFS, "templates/layout.html", "templates/images.html"))
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
	return out
}

// view is what the layout renders: the page's data and the navigation.
type view struct {
	Prefix   string
	Page     string
	LoggedIn bool
	Role     string
	Data     any
}

// render executes page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (c *console) render(w http.ResponseWriter, r *http.Request, code int, page string, data any) {
	p, loggedIn := r.Context().Value(principalKey{}).(principal)
	var b bytes.Buffer
	err := c.pages[page].ExecuteTemplate(&b, "layout.html", view{
		Prefix: c.opts.Prefix, Page: page, LoggedIn: loggedIn, Role: p.Role, Data: data,
	})
	if err != nil {
		c.log.Error("rendering console page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func (c *console) repositories(r *http.Request) (any, error) {
	return c.st.HygieneRepositories(r.Context(), "")
}

type hygienePage struct {
	StaleDays int
	Stale     []store.ImageReport
	Untagged  []store.ImageReport
	Removal   []store.ImageReport
}

func (c *console) hygiene(r *http.Request) (any, error) {
	ctx := r.Context()
	p := hygienePage{StaleDays: int(store.DefaultStaleAfter / (24 * time.Hour))}
	var err error
	if p.Stale, err = c.st.StaleImages(ctx, store.DefaultStaleAfter); err != nil {
		return nil, err
	}
	if p.Untagged, err = c.st.UntaggedImages(ctx); err != nil {
		return nil, err
	}
	if p.Removal, err = c.st.RemovalImages(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (c *console) revocations(r *http.Request) (any, error) {
	return c.st.RevokedImages(r.Context())
}

type applicationsPage struct {
	Applications []store.Application
	Removal      []store.ImageReport
}

func (c *console) applications(r *http.Request) (any, error) {
	apps, err := c.st.ListApplications(r.Context())
	if err != nil {
		return nil, err
	}
	removal, err := c.st.RemovalImages(r.Context())
	if err != nil {
		return nil, err
	}
	return applicationsPage{Applications: apps, Removal: removal}, nil
}

// registryRow is a registry as the console shows it: never its
// credentials.
type registryRow struct {
	Name         string
	URL          string
	Repositories []string
	Created      time.Time
}

func (c *console) registries(r *http.Request) (any, error) {
	regs, err := c.st.ListRegistries(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]registryRow, 0, len(regs))
	for _, reg := range regs {
		repos, err := c.st.Repositories(r.Context(), reg.ID)
		if err != nil {
			return nil, fmt.Errorf("repositories of registry %s: %w", reg.Name, err)
		}
		out = append(out, registryRow{Name: reg.Name, URL: reg.URL, Repositories: repos, Created: reg.Created})
	}
	return out, nil
}
