// Package yamlmsg says a yaml.v3 decoding error in the terms of the file
// being read: "line 4: field builtin not found", on one line, without
// "yaml: unmarshal errors:" and without the Go type the file was decoded
// into, which a user cannot act on.
package yamlmsg

import (
	"regexp"
	"strings"
)

var goType = regexp.MustCompile(` in type [\w.*\[\]]+`)

// Of returns err's message in the file's terms; several errors are joined
// with "; ".
func Of(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return goType.ReplaceAllString(msg, "")
}
