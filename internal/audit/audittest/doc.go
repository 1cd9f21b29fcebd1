// Package audittest is the attacker of the audit log's tests: someone who
// can write the database and knows the (public) chain format, and so
// rewrites history into a chain that verifies by itself.
//
//	audittest.Rewrite(t, db, func(e *audit.Entry) bool { e.Actor = "cli:mallory"; return true })
//
// Only tests import it.
package audittest
