package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// Error is a failed request: Code and Msg go to the client, Err (the
// cause) only to the log.
type Error struct {
	Code int
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%d %s", e.Code, e.Msg)
	}
	return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// errorf returns an *Error with code and a client message; cause may be nil.
func errorf(code int, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// handlerFunc is an HTTP handler that returns its failure instead of
// writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// render is the one adapter from handlerFunc to http.Handler: an *Error is
// rendered as {"error": Msg} with its Code; anything else is a 500 with a
// generic message. The cause is logged, never sent.
func render(log *slog.Logger, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var e *Error
		switch {
		case errors.As(err, &e):
		case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
			// The client went away: not a server failure. Logged and
			// counted as 499; nobody reads the answer.
			log.Info("request canceled by the client", "method", r.Method, "path", r.URL.Path)
			w.WriteHeader(StatusClientClosedRequest)
			return
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil:
			e = &Error{Code: http.StatusServiceUnavailable, Msg: "request timed out", Err: err}
		default:
			e = &Error{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
		}
		level := slog.LevelInfo
		if e.Code >= 500 {
			level = slog.LevelError
		}
		log.Log(r.Context(), level, "request failed",
			"method", r.Method, "path", r.URL.Path, "code", e.Code, "msg", e.Msg, "cause", e.Err)
		writeJSON(w, e.Code, map[string]string{"error": e.Msg})
	})
}

// writeJSON writes v as the JSON body with code.
// An encoding failure after the header is written cannot be reported to the
// client; the values written here are plain structs that always encode.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
