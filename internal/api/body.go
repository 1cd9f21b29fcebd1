package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// maxBody bounds a JSON request body (the registry notification has its
// own, larger bound).
const maxBody = 64 << 10

// decode reads the JSON request body (at most maxBody bytes) into v,
// strictly: one JSON object and nothing after it, no field v does not
// have. A body that is empty, `null`, not an object, or followed by more
// data (a second object) is a 400: a lenient decoder acted on the first
// of two objects and ignored the rest.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, err, "reading the request body: %v", err)
	}
	if len(b) > maxBody {
		return errorf(http.StatusRequestEntityTooLarge, nil, "request body larger than %d bytes", maxBody)
	}
	return decodeObject(b, v, true)
}

// errNotObject is the cause of a body that is not one JSON object.
var errNotObject = errors.New("not a JSON object")

// decodeObject decodes b, which must hold exactly one JSON object, into v.
// strictFields refuses fields v does not have.
func decodeObject(b []byte, v any, strictFields bool) error {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return errorf(http.StatusBadRequest, errNotObject, "the request body is empty: want a JSON object")
	}
	if trimmed[0] != '{' {
		// null, an array, a string, a number: never what a route takes.
		return errorf(http.StatusBadRequest, errNotObject, "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if strictFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, err, "decoding the request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, err, "the request body has data after its JSON object")
	}
	return nil
}
