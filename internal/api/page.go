package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
)

// Paging of every list route: ?limit=N (default DefaultLimit, at most
// MaxLimit) and ?cursor=C, the opaque `next` of the previous page; the
// last page has no `next`.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// pageParams reads ?limit and ?cursor; the cursor, when given, is decoded
// into cur (a route's own position type). A limit out of range, a cursor
// that does not decode: 400.
func pageParams(r *http.Request, cur any) (limit int, given bool, err error) {
	q := r.URL.Query()
	limit = DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return 0, false, errorf(http.StatusBadRequest, err, "limit %q: want a number from 1 to %d", s, MaxLimit)
		}
		limit = n
	}
	s := q.Get("cursor")
	if s == "" {
		return limit, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = decodeObject(b, cur, true)
	}
	if err != nil {
		return 0, false, errorf(http.StatusBadRequest, err, "cursor %q is not one this server gave", s)
	}
	return limit, true, nil
}

// cursor encodes a position as the opaque `next` of a page.
func cursor(pos any) string {
	b, _ := json.Marshal(pos)
	return base64.RawURLEncoding.EncodeToString(b)
}
