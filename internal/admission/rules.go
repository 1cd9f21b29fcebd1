package admission

import (
	"fmt"
	"slices"
	"strings"
)

// Rule names, as findings, exceptions and docs spell them.
const (
	RuleImage                    = "image"
	RuleRunAsNonRoot             = "runAsNonRoot"
	RulePrivileged               = "privileged"
	RuleHostPID                  = "hostPID"
	RuleHostIPC                  = "hostIPC"
	RuleHostNetwork              = "hostNetwork"
	RuleHostPath                 = "hostPath"
	RuleCapabilities             = "capabilities"
	RuleAllowPrivilegeEscalation = "allowPrivilegeEscalation"
	RuleReadOnlyRootFilesystem   = "readOnlyRootFilesystem"
	RulePlacement                = "placement"
	RuleOwner                    = "owner"
	// Rules of the Pod Security Standards beyond the ones above.
	RuleHostPorts          = "hostPorts"
	RuleHostProbes         = "hostProbesAndHostLifecycle"
	RuleProcMount          = "procMount"
	RuleSeccompProfile     = "seccompProfile"
	RuleSELinuxOptions     = "seLinuxOptions"
	RuleAppArmorProfile    = "appArmorProfile"
	RuleSysctls            = "sysctls"
	RuleRestrictedVolumes  = "restrictedVolumes"
	RuleRunAsUser          = "runAsUser"
	RuleWindowsHostProcess = "windowsHostProcess"
)

// podRuleNames are the rules a pod exception may allow: the Pod Security
// Standards' and readOnlyRootFilesystem.
var podRuleNames = []string{RulePrivileged, RuleHostPID, RuleHostIPC, RuleHostNetwork, RuleHostPath, RuleHostPorts,
	RuleHostProbes, RuleCapabilities, RuleProcMount, RuleSeccompProfile, RuleSELinuxOptions, RuleAppArmorProfile, RuleSysctls,
	RuleWindowsHostProcess, RuleRestrictedVolumes, RuleAllowPrivilegeEscalation, RuleRunAsNonRoot, RuleRunAsUser,
	RuleReadOnlyRootFilesystem}

func isPodRule(s string) bool { return slices.Contains(podRuleNames, s) }

// Finding is one broken rule.
type Finding struct {
	// Rule is one of the Rule* names.
	Rule string `json:"rule"`
	// Level is the Pod Security Standards level (and version) whose
	// check this is, "restricted:latest"; empty for Bulwark's own rules
	// (image, owner, placement, readOnlyRootFilesystem).
	Level string `json:"level,omitempty"`
	// Mode is what the finding does: enforce denies, warn warns, audit
	// logs.
	Mode Mode `json:"mode"`
	// Container is the container's name, when the finding is about one.
	Container string `json:"container,omitempty"`
	// Image is the image as written, for image findings.
	Image string `json:"image,omitempty"`
	// Path is the JSON pointer of what the finding is about.
	Path string `json:"path,omitempty"`
	// Problem says what is wrong, Fix how to fix it.
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
	// Subject names what is wrong: `container "app"`, `container "app"
	// image registry.local/shop/api:1.4`, `pod template`.
	Subject string `json:"subject"`
}

// Message is the finding in one line: subject, problem, rule (and the
// Pod Security Standards level it belongs to) and fix.
func (f Finding) Message() string {
	if f.Level != "" {
		return fmt.Sprintf("%s: %s (rule %s, Pod Security Standard %s): %s", f.Subject, f.Problem, f.Rule, f.Level, f.Fix)
	}
	return fmt.Sprintf("%s: %s (rule %s): %s", f.Subject, f.Problem, f.Rule, f.Fix)
}

func containerSubject(c container) string {
	return fmt.Sprintf("%s %q", c.What, c.Name)
}

// podMode returns the pod rules' mode and level in ns and the rules and
// extra capabilities allowed there.
func (c *Config) podMode(ns string) (Mode, Level, []string, []string) {
	level := c.Pods.Level
	if level.Name == "" {
		level = DefaultLevel
	}
	for _, e := range c.Pods.Exceptions {
		if matchNamespace(e.Namespaces, ns) {
			m := c.Pods.Mode
			if e.Mode != "" {
				m = e.Mode
			}
			if e.Level != nil {
				level = *e.Level
			}
			return m, level, e.Allow, e.Capabilities
		}
	}
	return c.Pods.Mode, level, nil, nil
}

// imageMode returns the image rule's mode in ns.
func (c *Config) imageMode(ns string) Mode {
	for _, r := range c.Images {
		if matchNamespace(r.Namespaces, ns) {
			return r.Mode
		}
	}
	return Off
}

// normCap spells a capability as Kubernetes does: upper case, no CAP_.
func normCap(s string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "CAP_")
}

// podRules evaluates the Pod Security Standards level of o's namespace
// and Bulwark's own readOnlyRootFilesystem rule on o.
func (c *Config) podRules(o *Object) []Finding {
	mode, level, allowed, extraCaps := c.podMode(o.Namespace)
	if mode == Off {
		return nil
	}
	caps := append(append([]string(nil), c.Pods.AllowedCapabilities...), extraCaps...)
	for i := range caps {
		caps[i] = normCap(caps[i])
	}
	out := levelRules(o, level, mode, allowed, caps)
	if c.Pods.ReadOnlyRootFilesystem && !slices.Contains(allowed, RuleReadOnlyRootFilesystem) {
		for _, ct := range o.containers() {
			if sc := ct.SC; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				out = append(out, Finding{Rule: RuleReadOnlyRootFilesystem, Mode: mode, Subject: containerSubject(ct), Container: ct.Name,
					Path: ct.Path + "/securityContext/readOnlyRootFilesystem", Problem: "has a writable root filesystem",
					Fix: "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where it writes"})
			}
		}
	}
	return out
}

// ownerRules requires the owner labels on the pod template.
func (c *Config) ownerRules(o *Object) []Finding {
	r := c.Owners
	if r.Mode == Off || len(r.Labels) == 0 || matchAny(r.Exempt, o.Namespace) {
		return nil
	}
	var missing []string
	for _, k := range r.Labels {
		if o.Pod.Labels[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	where := "spec.template.metadata.labels"
	switch o.Kind {
	case "Pod":
		where = "metadata.labels"
	case "CronJob":
		where = "spec.jobTemplate.spec.template.metadata.labels"
	}
	return []Finding{{Rule: RuleOwner, Mode: r.Mode, Subject: "pod template", Path: o.LabelsPath,
		Problem: "has no owner label " + quoteList(missing),
		Fix:     fmt.Sprintf("add %s to %s (who owns and answers for this workload)", quoteList(missing), where)}}
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
