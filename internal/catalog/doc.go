// Package catalog finds the packages inside an image's squashed filesystem:
// OS packages (dpkg, apk, rpm) and language packages (Go and Rust binaries,
// npm, Python, Java archives, Cargo, Ruby gems, PHP Composer, .NET).
//
// A Cataloger has a name and one work method. Most are a fileCataloger: a
// path matcher plus a parser of one file's bytes. The built-ins are listed in
// one place, All, in the order they run. Catalogers run in parallel; each
// reads only the files it asks for, straight from the layers.
//
// A package database that cannot be read or parsed is a warning, not an
// error: the rest of the inventory is still produced, and the warning names
// the file and the layer.
package catalog
