// Package yamlmsg says a YAML decoding error in the terms of the file
// being read: "line 4: field builtin not found", on one line, without
// "yaml: unmarshal errors:" and without the Go type the file was decoded
// into, which a user cannot act on.
package yamlmsg

import (
	"regexp"
	"strings"
)

var goType = regexp.MustCompile(` in type [\w.*\[\]]+`)

// sigs.k8s.io/yaml converts to JSON first and says so
var viaJSON = regexp.MustCompile(`^error (unmarshaling|converting YAML to) JSON: (while decoding JSON: )?(json: )?`)

// Of returns err's message in the file's terms; several errors are joined
// with "; ". It takes yaml.v3's errors and sigs.k8s.io/yaml's.
func Of(err error) string {
	msg := viaJSON.ReplaceAllString(err.Error(), "")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return goType.ReplaceAllString(msg, "")
}
