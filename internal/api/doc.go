// Package api is the JSON REST API of `bulwark server`: handlers that
// return errors, one adapter that renders them, bearer-token auth with
// roles (viewer < operator < admin), audited mutations, Prometheus metrics
// and the OpenAPI document.
//
// Routes are listed in one place, [Handler.routes]; the OpenAPI document
// (openapi.json, embedded) must be kept in step with it (a test checks that
// every route is described).
package api
