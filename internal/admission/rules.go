package admission

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
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
)

var podRuleNames = []string{RuleRunAsNonRoot, RulePrivileged, RuleHostPID, RuleHostIPC, RuleHostNetwork,
	RuleHostPath, RuleCapabilities, RuleAllowPrivilegeEscalation, RuleReadOnlyRootFilesystem}

func isPodRule(s string) bool { return slices.Contains(podRuleNames, s) }

// Finding is one broken rule.
type Finding struct {
	// Rule is one of the Rule* names.
	Rule string `json:"rule"`
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

// Message is the finding in one line: subject, problem, rule and fix.
func (f Finding) Message() string {
	return fmt.Sprintf("%s: %s (rule %s): %s", f.Subject, f.Problem, f.Rule, f.Fix)
}

func containerSubject(c container) string {
	return fmt.Sprintf("%s %q", c.What, c.Name)
}

// podMode returns the pod rules' mode in ns and the rules and extra
// capabilities allowed there.
func (c *Config) podMode(ns string) (Mode, []string, []string) {
	for _, e := range c.Pods.Exceptions {
		if matchNamespace(e.Namespaces, ns) {
			m := c.Pods.Mode
			if e.Mode != "" {
				m = e.Mode
			}
			return m, e.Allow, e.Capabilities
		}
	}
	return c.Pods.Mode, nil, nil
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

// podRules evaluates the least-privilege rules on o.
func (c *Config) podRules(o *Object) []Finding {
	mode, allowed, extraCaps := c.podMode(o.Namespace)
	if mode == Off {
		return nil
	}
	on := func(rule string) bool { return !slices.Contains(allowed, rule) }
	var out []Finding
	add := func(rule, subject, path, problem, fix, name string) {
		out = append(out, Finding{Rule: rule, Mode: mode, Subject: subject, Container: name, Path: path, Problem: problem, Fix: fix})
	}
	spec := &o.Pod.Spec
	if on(RuleHostPID) && spec.HostPID {
		add(RuleHostPID, "pod template", o.SpecPath+"/hostPID", "shares the host's process namespace (hostPID: true)", "remove hostPID or set it to false", "")
	}
	if on(RuleHostIPC) && spec.HostIPC {
		add(RuleHostIPC, "pod template", o.SpecPath+"/hostIPC", "shares the host's IPC namespace (hostIPC: true)", "remove hostIPC or set it to false", "")
	}
	if on(RuleHostNetwork) && spec.HostNetwork {
		add(RuleHostNetwork, "pod template", o.SpecPath+"/hostNetwork", "uses the host's network (hostNetwork: true)", "remove hostNetwork or set it to false; expose ports through a Service", "")
	}
	if on(RuleHostPath) {
		for i, v := range spec.Volumes {
			if v.HostPath != nil {
				add(RuleHostPath, fmt.Sprintf("volume %q", v.Name), fmt.Sprintf("%s/volumes/%d", o.SpecPath, i),
					fmt.Sprintf("mounts the host path %s", v.HostPath.Path), "use an emptyDir, configMap, secret or persistentVolumeClaim volume instead of hostPath", "")
			}
		}
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	caps := append(append([]string(nil), c.Pods.AllowedCapabilities...), extraCaps...)
	for i := range caps {
		caps[i] = normCap(caps[i])
	}
	for _, ct := range o.containers() {
		sc := ct.SC
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		subj := containerSubject(ct)
		if on(RuleRunAsNonRoot) {
			user := sc.RunAsUser
			if user == nil {
				user = psc.RunAsUser
			}
			nonRoot := sc.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = psc.RunAsNonRoot
			}
			switch {
			case user != nil && *user == 0:
				add(RuleRunAsNonRoot, subj, ct.Path+"/securityContext/runAsUser", "runs as root (runAsUser: 0)", "set securityContext.runAsUser to a non-zero UID and runAsNonRoot: true", ct.Name)
			case nonRoot != nil && !*nonRoot && user == nil:
				add(RuleRunAsNonRoot, subj, ct.Path+"/securityContext/runAsNonRoot", "may run as root (runAsNonRoot: false)", "set securityContext.runAsNonRoot: true (and a non-zero runAsUser)", ct.Name)
			case user == nil && (nonRoot == nil || !*nonRoot):
				add(RuleRunAsNonRoot, subj, ct.Path+"/securityContext", "may run as root (neither runAsNonRoot: true nor a non-zero runAsUser)", "set securityContext.runAsNonRoot: true and runAsUser to a non-zero UID (pod or container level)", ct.Name)
			}
		}
		if on(RulePrivileged) && sc.Privileged != nil && *sc.Privileged {
			add(RulePrivileged, subj, ct.Path+"/securityContext/privileged", "is privileged", "remove securityContext.privileged or set it to false", ct.Name)
		}
		if on(RuleAllowPrivilegeEscalation) && (sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation) {
			add(RuleAllowPrivilegeEscalation, subj, ct.Path+"/securityContext/allowPrivilegeEscalation", "allows privilege escalation", "set securityContext.allowPrivilegeEscalation: false", ct.Name)
		}
		if on(RuleCapabilities) {
			var drop, extra []string
			if sc.Capabilities != nil {
				for _, d := range sc.Capabilities.Drop {
					drop = append(drop, normCap(string(d)))
				}
				for _, a := range sc.Capabilities.Add {
					if n := normCap(string(a)); !slices.Contains(caps, n) {
						extra = append(extra, n)
					}
				}
			}
			if !slices.Contains(drop, "ALL") {
				add(RuleCapabilities, subj, ct.Path+"/securityContext/capabilities/drop", "does not drop all capabilities", "set securityContext.capabilities.drop: [ALL] and add back only what it needs"+allowedList(caps), ct.Name)
			}
			if len(extra) > 0 {
				sort.Strings(extra)
				add(RuleCapabilities, subj, ct.Path+"/securityContext/capabilities/add", "adds capabilities "+strings.Join(extra, ", ")+" that are not allowed",
					"remove them from securityContext.capabilities.add"+allowedList(caps), ct.Name)
			}
		}
		if c.Pods.ReadOnlyRootFilesystem && on(RuleReadOnlyRootFilesystem) && (sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem) {
			add(RuleReadOnlyRootFilesystem, subj, ct.Path+"/securityContext/readOnlyRootFilesystem", "has a writable root filesystem", "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where it writes", ct.Name)
		}
	}
	return out
}

func allowedList(caps []string) string {
	if len(caps) == 0 {
		return " (no capability may be added)"
	}
	return " (allowed: " + strings.Join(caps, ", ") + ")"
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
