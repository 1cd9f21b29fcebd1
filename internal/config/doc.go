// Package config feeds command flags from the environment and a config
// file, so every setting can be given three ways. Precedence: a flag on the
// command line, then the environment (BULWARK_<FLAG>, upper case, dashes as
// underscores: BULWARK_CACHE_DIR), then the config file, then the default.
//
// The config file is YAML. Top-level keys are flag names and apply to every
// command that has the flag; a key named after a command holds keys for that
// command only:
//
//	cache-dir: /var/cache/bulwark
//	sbom:
//	  format: cyclonedx
//
// A key that is no flag of any command is an error, so a typo never switches
// a setting off silently.
package config
