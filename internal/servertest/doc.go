// Package servertest runs a real `bulwark server` (server.Run) in process
// for the tests of other packages: a temporary data directory seeded with
// images and an admin and a viewer token, the API on a free port of
// 127.0.0.1, stopped when the test ends.
//
// The server package's own tests cannot use it (it imports server); they
// start Run themselves.
package servertest
