// Package console is the server's small web console: server-rendered
// pages (html/template, embedded CSS, no JavaScript) over the store —
// registries, repositories with age, findings and certification, stale,
// untagged and end-of-life images, revocations with rollback targets,
// applications and owners — and a page for each repository, image (its
// vulnerabilities recomputed from the stored inventory, its decision rule
// by rule, its audited certification history, its rollback target) and
// advisory record (the images it affects now), each at its own address.
//
// It is read-only. Every page needs an API token of any role, given once
// on the login form and kept in an HttpOnly, SameSite=Strict cookie
// (Secure when served over TLS) that is authenticated again on every
// request, so a revoked token stops working at once. docs/console.md has
// the design.
package console
