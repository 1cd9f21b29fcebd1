package audit

import (
	"database/sql"
	"testing"
)

// EachBackend runs test on every backend of backends_test.go (SQLite, and
// PostgreSQL when installed) for the tests of package audit_test, with
// open returning a fresh database holding the audit table.
func EachBackend(t *testing.T, test func(t *testing.T, open func(t *testing.T) *sql.DB)) {
	eachBackend(t, func(t *testing.T, b backend) { test(t, b.open) })
}
