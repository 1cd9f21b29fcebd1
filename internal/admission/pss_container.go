package admission

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// baselineCapabilities may be added at the baseline level (the container
// runtimes' default set).
var baselineCapabilities = []string{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

// container checks one container of the pod template.
func (e *pssEval) container(c container) {
	sc := c.SC
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	subj := containerSubject(c)
	p := c.Path + "/securityContext"
	if sc.Privileged != nil && *sc.Privileged {
		e.add(RulePrivileged, subj, p+"/privileged", "is privileged", "remove securityContext.privileged or set it to false", c.Name)
	}
	e.capabilities(c, sc, subj, p)
	for i, port := range c.C.Ports {
		if port.HostPort != 0 {
			e.add(RuleHostPorts, subj, fmt.Sprintf("%s/ports/%d/hostPort", c.Path, i), fmt.Sprintf("uses the host port %d", port.HostPort),
				"remove hostPort and expose the port through a Service", c.Name)
		}
	}
	if e.minor >= 34 {
		e.hostProbes(c, subj)
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount && !(e.minor >= 35 && e.userNS && !e.restricted) {
		e.add(RuleProcMount, subj, p+"/procMount", fmt.Sprintf("sets procMount: %s", *sc.ProcMount), "remove securityContext.procMount or set it to Default", c.Name)
	}
	e.seccomp(subj, p, sc.SeccompProfile, c.Name)
	e.seLinux(subj, p, sc.SELinuxOptions, c.Name)
	e.appArmor(subj, p, sc.AppArmorProfile, c.Name)
	if w := sc.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
		e.add(RuleWindowsHostProcess, subj, p+"/windowsOptions/hostProcess", "runs as a Windows host process (hostProcess: true)", "remove windowsOptions.hostProcess or set it to false", c.Name)
	}
	if !e.restricted {
		return
	}
	if e.minor >= 8 && !(e.windows && e.minor >= 25) && (sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation) {
		e.add(RuleAllowPrivilegeEscalation, subj, p+"/allowPrivilegeEscalation", "allows privilege escalation", "set securityContext.allowPrivilegeEscalation: false", c.Name)
	}
	if e.relaxedForUserNS() {
		return
	}
	switch {
	case sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot:
		e.add(RuleRunAsNonRoot, subj, p+"/runAsNonRoot", "may run as root (runAsNonRoot: false)", "set securityContext.runAsNonRoot: true", c.Name)
	case sc.RunAsNonRoot == nil && e.psc.RunAsNonRoot == nil:
		e.add(RuleRunAsNonRoot, subj, p+"/runAsNonRoot", "may run as root (neither it nor the pod sets runAsNonRoot: true)",
			"set securityContext.runAsNonRoot: true (pod or container level)", c.Name)
	}
	if e.minor >= 23 && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		e.add(RuleRunAsUser, subj, p+"/runAsUser", "runs as root (runAsUser: 0)", "set securityContext.runAsUser to a non-zero UID", c.Name)
	}
}

// capabilities: baseline allows adding the default set; restricted (from
// 1.22; not for Windows pods from 1.25) requires drop: [ALL] and allows
// adding NET_BIND_SERVICE only. Both compare the names exactly as
// written, as the container runtime does not: "net_raw" is not a baseline
// capability. Capabilities the configuration allows are allowed too.
func (e *pssEval) capabilities(c container, sc *corev1.SecurityContext, subj, p string) {
	restricted := e.restricted && e.minor >= 22
	if restricted && e.windows && e.minor >= 25 {
		return
	}
	allowed := baselineCapabilities
	if restricted {
		allowed = []string{"NET_BIND_SERVICE"}
	}
	for _, c := range e.caps {
		if !slices.Contains(allowed, c) {
			allowed = append(slices.Clip(allowed), c)
		}
	}
	var add []string
	if sc.Capabilities != nil {
		for _, a := range sc.Capabilities.Add {
			if !slices.Contains(allowed, string(a)) && !slices.Contains(add, string(a)) {
				add = append(add, string(a))
			}
		}
	}
	if restricted && (sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL")) {
		e.add(RuleCapabilities, subj, p+"/capabilities/drop", "does not drop all capabilities",
			"set securityContext.capabilities.drop: [ALL] and add back only what it needs"+allowedList(allowed), c.Name)
	}
	if len(add) > 0 {
		sort.Strings(add)
		e.add(RuleCapabilities, subj, p+"/capabilities/add", "adds capabilities "+strings.Join(add, ", ")+" that are not allowed",
			"remove them from securityContext.capabilities.add"+allowedList(allowed), c.Name)
	}
}

func allowedList(caps []string) string {
	return " (allowed: " + strings.Join(caps, ", ") + ")"
}

// hostProbes: from 1.34, probes and lifecycle hooks may not name a host
// (they would reach past the pod, from the kubelet).
func (e *pssEval) hostProbes(c container, subj string) {
	check := func(where string, http *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction) {
		if http != nil && http.Host != "" {
			e.add(RuleHostProbes, subj, c.Path+"/"+where+"/httpGet/host", fmt.Sprintf("%s sends HTTP to the host %s", where, http.Host),
				"remove httpGet.host (the probe then targets the pod's IP)", c.Name)
		}
		if tcp != nil && tcp.Host != "" {
			e.add(RuleHostProbes, subj, c.Path+"/"+where+"/tcpSocket/host", fmt.Sprintf("%s connects to the host %s", where, tcp.Host),
				"remove tcpSocket.host (the probe then targets the pod's IP)", c.Name)
		}
	}
	for _, pr := range []struct {
		where string
		p     *corev1.Probe
	}{{"livenessProbe", c.C.LivenessProbe}, {"readinessProbe", c.C.ReadinessProbe}, {"startupProbe", c.C.StartupProbe}} {
		if pr.p != nil {
			check(pr.where, pr.p.HTTPGet, pr.p.TCPSocket)
		}
	}
	if l := c.C.Lifecycle; l != nil {
		if l.PostStart != nil {
			check("lifecycle/postStart", l.PostStart.HTTPGet, l.PostStart.TCPSocket)
		}
		if l.PreStop != nil {
			check("lifecycle/preStop", l.PreStop.HTTPGet, l.PreStop.TCPSocket)
		}
	}
}
