// Package cli is the cobra command tree of the bulwark binary. Each
// subcommand lives in its own file as newXCmd(); it parses flags, calls a
// library package and writes the result. No domain logic lives here.
//
// Exit codes: 0 success; 1 the command worked and found what the user asked
// it to fail on (findings at or above --fail-on, a failed gate); 2 usage or
// runtime error (bad input, unreachable registry, ...).
package cli
