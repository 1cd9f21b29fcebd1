package admission

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pod Security Standards level names.
const (
	LevelPrivileged = "privileged"
	LevelBaseline   = "baseline"
	LevelRestricted = "restricted"
)

// LatestMinor is the newest Kubernetes minor version whose Pod Security
// Standards checks are implemented (k8s.io/pod-security-admission
// v0.37). "latest", and any newer version, evaluate these checks, as
// pod-security-admission itself does.
const LatestMinor = 37

// Level is a Pod Security Standards level at a Kubernetes version, as
// the pod-security.kubernetes.io/enforce and -enforce-version namespace
// labels spell them: "restricted", "baseline:v1.30", "restricted:latest".
type Level struct {
	// Name is privileged, baseline or restricted.
	Name string
	// Pinned says the level is evaluated as Kubernetes 1.Minor defines
	// it; unpinned (the zero value) is latest.
	Pinned bool
	Minor  int
}

// DefaultLevel is the level when the configuration names none.
var DefaultLevel = Level{Name: LevelRestricted}

// LevelError is a level that does not parse.
type LevelError struct {
	Value  string
	Reason string
}

func (e *LevelError) Error() string {
	return fmt.Sprintf("level %q: %s", e.Value, e.Reason)
}

var versionRE = regexp.MustCompile(`^v1\.(0|[1-9][0-9]{0,3})$`)

// ParseLevel reads "NAME[:VERSION]": NAME is privileged, baseline or
// restricted; VERSION is "latest" (the default) or "v1.N".
func ParseLevel(s string) (Level, error) {
	name, version, hasVersion := strings.Cut(s, ":")
	var l Level
	switch name {
	case LevelPrivileged, LevelBaseline, LevelRestricted:
		l.Name = name
	default:
		return Level{}, &LevelError{Value: s, Reason: "want privileged, baseline or restricted, optionally with :latest or :v1.N"}
	}
	if !hasVersion || version == "latest" {
		return l, nil
	}
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return Level{}, &LevelError{Value: s, Reason: fmt.Sprintf("version %q: want latest or v1.N", version)}
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return Level{}, &LevelError{Value: s, Reason: fmt.Sprintf("version %q: %v", version, err)}
	}
	l.Pinned, l.Minor = true, n
	return l, nil
}

// String spells the level as ParseLevel reads it: "restricted:latest".
func (l Level) String() string {
	if l.Name == "" {
		return ""
	}
	if !l.Pinned {
		return l.Name + ":latest"
	}
	return fmt.Sprintf("%s:v1.%d", l.Name, l.Minor)
}

// minor is the version whose checks apply: latest, and versions newer
// than the newest implemented, evaluate the newest checks.
func (l Level) minor() int {
	if !l.Pinned || l.Minor > LatestMinor {
		return LatestMinor
	}
	return l.Minor
}

// UnmarshalYAML reads the level from its string form.
func (l *Level) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: level: want a string such as restricted or baseline:v1.35", n.Line)
	}
	v, err := ParseLevel(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*l = v
	return nil
}

// MarshalYAML writes the level in its string form.
func (l Level) MarshalYAML() (any, error) { return l.String(), nil }
