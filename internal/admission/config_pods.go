package admission

import (
	"fmt"
	"strings"
)

// PodRules are the least-privilege rules. Every rule is on unless said
// otherwise; Exceptions relax them per namespace.
type PodRules struct {
	// Mode of the pod rules (default enforce).
	Mode Mode `yaml:"mode"`
	// Level is the Pod Security Standards level and version enforced
	// (default restricted:latest).
	Level Level `yaml:"level"`
	// AllowedCapabilities may be added; every other capability must be
	// dropped (drop: [ALL]).
	AllowedCapabilities []string `yaml:"allowedCapabilities"`
	// ReadOnlyRootFilesystem requires readOnlyRootFilesystem: true.
	ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
	// Exceptions relax rules in some namespaces; the first match applies.
	Exceptions []PodException `yaml:"exceptions"`
}

// PodException relaxes the pod rules in some namespaces.
type PodException struct {
	Namespaces []string `yaml:"namespaces"`
	// Mode, when set, replaces the pod rules' mode there.
	Mode Mode `yaml:"mode"`
	// Level, when set, replaces the pod rules' level there (stricter or
	// laxer).
	Level *Level `yaml:"level"`
	// Allow names rules that do not apply there (podRuleNames).
	Allow []string `yaml:"allow"`
	// Capabilities are allowed there in addition to AllowedCapabilities.
	Capabilities []string `yaml:"capabilities"`
}

// resolve fills the pod rules' defaults and checks the exceptions.
func (p *PodRules) resolve() error {
	if p.Mode == "" {
		p.Mode = Enforce
	}
	if p.Level.Name == "" {
		p.Level = DefaultLevel
	}
	for _, e := range p.Exceptions {
		if err := checkGlobs(e.Namespaces, "pods", "exceptions"); err != nil {
			return err
		}
		for _, a := range e.Allow {
			if !isPodRule(a) {
				return errAt(fmt.Sprintf("allow: unknown rule %q (want one of %s)", a, strings.Join(podRuleNames, ", ")), "pods", "exceptions")
			}
		}
	}
	return nil
}
