package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RegistryError returns err with the registry's error diagnostics written
// for people. go-containerregistry prints a diagnostic's detail as a Go
// value ("MANIFEST_UNKNOWN: manifest unknown; map[Tag:2]"); RegistryError
// writes "MANIFEST_UNKNOWN: manifest unknown (Tag: 2)". errors.Is and
// errors.As still see err and its chain. Other errors are returned as they
// are.
func RegistryError(err error) error {
	var te *transport.Error
	if err == nil || !errors.As(err, &te) {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, d := range te.Errors {
		if d.Detail != nil {
			clean = strings.ReplaceAll(clean, d.String(), diagnostic(d))
		}
	}
	if clean == msg {
		return err
	}
	return &registryError{msg: clean, err: err}
}

type registryError struct {
	msg string
	err error
}

func (e *registryError) Error() string { return e.msg }
func (e *registryError) Unwrap() error { return e.err }

// diagnostic is "CODE: message (key: value, ...)", the detail's keys in
// order, values as JSON unless they are strings.
func diagnostic(d transport.Diagnostic) string {
	msg := fmt.Sprintf("%s: %s", d.Code, d.Message)
	var parts []string
	switch detail := d.Detail.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(detail)) {
			parts = append(parts, k+": "+detailValue(detail[k]))
		}
	default:
		parts = append(parts, detailValue(detail))
	}
	if s := strings.Join(parts, ", "); s != "" {
		msg += " (" + s + ")"
	}
	return msg
}

func detailValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
