// Package catalog finds the packages inside an image's squashed filesystem:
// OS packages (dpkg, apk, rpm) and language packages (Go and Rust binaries,
// npm, Python, Java archives, Cargo, Ruby gems, PHP Composer, .NET).
//
// A Cataloger has a name and one work method. Most are a fileCataloger: a
// path matcher plus a parser of one file's bytes. The built-ins are listed in
// one place, All, in the order they run. Catalogers run in parallel; each
// reads only the files it asks for, straight from the layers.
//
// A package database is read record by record: a record that cannot be read
// (a dpkg stanza, a lock file entry, an rpm header) costs that record only.
// Each such record, or a whole file that cannot be read, is a problem
// (Input.Problem): a warning naming the cataloger, the file, the line and
// the layer, and an entry of the SBOM's Problems, which marks the inventory
// Incomplete. It is not an error: the rest of the inventory is produced.
package catalog
