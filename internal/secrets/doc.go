// Package secrets finds private keys, cloud credentials, tokens and passwords
// in a container image: in every regular file of every layer, including files
// a later layer deleted or replaced, and in the image config (ENV values,
// build arguments and history).
//
// The built-in rules are listed in one table, rules.go, most specific first;
// Rules returns them for documentation and help text. Each rule is a regular
// expression guarded by keywords: the expression only runs when one of its
// keywords occurs in the text (ASCII case-insensitively), and, for rules whose
// matches never span lines, only over the lines that hold a keyword. A
// candidate then passes the rule's own checks (documented example keys,
// placeholders such as "changeme" or "${TOKEN}", a minimum randomness for
// token bodies) before it becomes a Finding. Where two rules match the same
// bytes, only the more specific one (earlier in the table) reports.
//
// Binary files (a NUL byte in the first 8 KiB), files over
// Options.MaxFileSize and well-known noisy trees (documentation, locales, CA
// bundles, test suites shipped by language runtimes) are skipped; see
// DefaultSkipPaths.
//
// Options.Inspector runs the same scan inside a streaming pass over
// compressed layers (image.Options.Inspect): each file is scanned as it
// streams past, and a layer's findings are kept with the layer's cached
// results, keyed by Options.Key (rules version, rule table, options), so a
// layer shared by many images is read once; Scan then takes them from the
// layers and decides per image whether each file was deleted.
//
// A Finding never holds the secret itself: Redacted keeps at most the first
// four characters (fewer for short secrets) and replaces the rest with '*'.
// docs/secrets.md documents the rules, the skips and the false-positive
// measurement on a Debian base image.
package secrets
