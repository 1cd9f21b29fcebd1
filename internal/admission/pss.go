package admission

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The Pod Security Standards (kubernetes.io/docs/concepts/security/
// pod-security-standards) evaluated field by field as
// k8s.io/pod-security-admission's policy package defines them, version by
// version. That package is the oracle of pss_oracle_test.go; it is not
// imported here (its API package pulls k8s.io/component-base into the
// webhook, and evaluating it costs an allocation per check).

// pssEval evaluates one level on one pod template.
type pssEval struct {
	o          *Object
	spec       *corev1.PodSpec
	psc        *corev1.PodSecurityContext
	lvl        Level
	minor      int
	restricted bool
	// windows is spec.os.name: windows; userNS is hostUsers: false.
	windows, userNS bool
	mode            Mode
	// allowed are rules an exception turns off; caps capabilities the
	// configuration allows in addition to the level's.
	allowed, caps []string
	out           []Finding
}

func (e *pssEval) on(rule string) bool { return !slices.Contains(e.allowed, rule) }

func (e *pssEval) add(rule, subject, path, problem, fix, container string) {
	if !e.on(rule) {
		return
	}
	e.out = append(e.out, Finding{Rule: rule, Mode: e.mode, Level: e.lvl.String(), Subject: subject, Container: container, Path: path, Problem: problem, Fix: fix})
}

// levelRules evaluates level on o's pod template.
func levelRules(o *Object, level Level, mode Mode, allowed, caps []string) []Finding {
	if level.Name == LevelPrivileged || level.Name == "" {
		return nil
	}
	spec := &o.Pod.Spec
	e := &pssEval{o: o, spec: spec, psc: spec.SecurityContext, lvl: level, minor: level.minor(),
		restricted: level.Name == LevelRestricted, mode: mode, allowed: allowed, caps: caps,
		windows: spec.OS != nil && spec.OS.Name == corev1.Windows,
		userNS:  spec.HostUsers != nil && !*spec.HostUsers}
	if e.psc == nil {
		e.psc = &corev1.PodSecurityContext{}
	}
	cs := o.containers()
	e.hostNamespaces()
	e.volumes()
	e.sysctls()
	e.podOptions()
	e.annotations(cs)
	for _, c := range cs {
		e.container(c)
	}
	return e.out
}

func (e *pssEval) hostNamespaces() {
	s := e.spec
	p := e.o.SpecPath
	if s.HostPID {
		e.add(RuleHostPID, "pod template", p+"/hostPID", "shares the host's process namespace (hostPID: true)", "remove hostPID or set it to false", "")
	}
	if s.HostIPC {
		e.add(RuleHostIPC, "pod template", p+"/hostIPC", "shares the host's IPC namespace (hostIPC: true)", "remove hostIPC or set it to false", "")
	}
	if s.HostNetwork {
		e.add(RuleHostNetwork, "pod template", p+"/hostNetwork", "uses the host's network (hostNetwork: true)", "remove hostNetwork or set it to false; expose ports through a Service", "")
	}
}

// restrictedVolumeOK are the volume types the restricted level allows.
func restrictedVolumeOK(v *corev1.Volume) bool {
	return v.ConfigMap != nil || v.CSI != nil || v.DownwardAPI != nil || v.EmptyDir != nil || v.Ephemeral != nil ||
		v.Image != nil || v.PersistentVolumeClaim != nil || v.Projected != nil || v.Secret != nil
}

func (e *pssEval) volumes() {
	for i := range e.spec.Volumes {
		v := &e.spec.Volumes[i]
		path := fmt.Sprintf("%s/volumes/%d", e.o.SpecPath, i)
		subj := fmt.Sprintf("volume %q", v.Name)
		switch {
		case v.HostPath != nil:
			e.add(RuleHostPath, subj, path+"/hostPath", fmt.Sprintf("mounts the host path %s", v.HostPath.Path),
				"use an emptyDir, configMap, secret or persistentVolumeClaim volume instead of hostPath", "")
		case e.restricted && !restrictedVolumeOK(v):
			e.add(RuleRestrictedVolumes, subj, path, "is of a volume type the restricted level forbids ("+volumeType(v)+")",
				"use configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected or secret (a persistentVolumeClaim for network storage)", "")
		}
	}
}

// volumeType names v's source for messages.
func volumeType(v *corev1.Volume) string {
	s := v.VolumeSource
	for _, t := range []struct {
		set  bool
		name string
	}{{s.GCEPersistentDisk != nil, "gcePersistentDisk"}, {s.AWSElasticBlockStore != nil, "awsElasticBlockStore"}, {s.GitRepo != nil, "gitRepo"},
		{s.NFS != nil, "nfs"}, {s.ISCSI != nil, "iscsi"}, {s.Glusterfs != nil, "glusterfs"}, {s.RBD != nil, "rbd"}, {s.FlexVolume != nil, "flexVolume"},
		{s.Cinder != nil, "cinder"}, {s.CephFS != nil, "cephfs"}, {s.Flocker != nil, "flocker"}, {s.FC != nil, "fc"}, {s.AzureFile != nil, "azureFile"},
		{s.VsphereVolume != nil, "vsphereVolume"}, {s.Quobyte != nil, "quobyte"}, {s.AzureDisk != nil, "azureDisk"},
		{s.PhotonPersistentDisk != nil, "photonPersistentDisk"}, {s.PortworxVolume != nil, "portworxVolume"}, {s.ScaleIO != nil, "scaleIO"},
		{s.StorageOS != nil, "storageos"}} {
		if t.set {
			return t.name
		}
	}
	return "no volume source"
}

// Safe sysctls, by the version that allowed them.
var (
	sysctls1_0  = []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}
	sysctls1_27 = []string{"net.ipv4.ip_local_reserved_ports"}
	sysctls1_29 = []string{"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
	sysctls1_32 = []string{"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
	sysctls1_37 = []string{"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}
)

func safeSysctl(name string, minor int) bool {
	return slices.Contains(sysctls1_0, name) ||
		minor >= 27 && slices.Contains(sysctls1_27, name) ||
		minor >= 29 && slices.Contains(sysctls1_29, name) ||
		minor >= 32 && slices.Contains(sysctls1_32, name) ||
		minor >= 37 && slices.Contains(sysctls1_37, name)
}

func (e *pssEval) sysctls() {
	for i, s := range e.psc.Sysctls {
		if !safeSysctl(s.Name, e.minor) {
			e.add(RuleSysctls, "pod template", fmt.Sprintf("%s/securityContext/sysctls/%d/name", e.o.SpecPath, i),
				fmt.Sprintf("sets the sysctl %s, which is not in the safe set of %s", s.Name, e.lvl),
				"remove it (only namespaced, isolated sysctls such as net.ipv4.ip_local_port_range are allowed)", "")
		}
	}
}

// podOptions checks the pod-level security context: seccomp, SELinux,
// AppArmor, Windows host process, run-as-user and run-as-non-root.
func (e *pssEval) podOptions() {
	p := e.o.SpecPath + "/securityContext"
	subj := "pod template"
	e.seccomp(subj, p, e.psc.SeccompProfile, "")
	e.seLinux(subj, p, e.psc.SELinuxOptions, "")
	e.appArmor(subj, p, e.psc.AppArmorProfile, "")
	if w := e.psc.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
		e.add(RuleWindowsHostProcess, subj, p+"/windowsOptions/hostProcess", "runs as a Windows host process (hostProcess: true)", "remove windowsOptions.hostProcess or set it to false", "")
	}
	if !e.restricted || e.relaxedForUserNS() {
		return
	}
	if e.minor >= 23 && e.psc.RunAsUser != nil && *e.psc.RunAsUser == 0 {
		e.add(RuleRunAsUser, subj, p+"/runAsUser", "runs as root (runAsUser: 0)", "set securityContext.runAsUser to a non-zero UID", "")
	}
	if e.psc.RunAsNonRoot != nil && !*e.psc.RunAsNonRoot {
		e.add(RuleRunAsNonRoot, subj, p+"/runAsNonRoot", "may run as root (runAsNonRoot: false)", "set securityContext.runAsNonRoot: true", "")
	}
}

// relaxedForUserNS: from 1.35, a pod in a user namespace (hostUsers:
// false) may run as root and set procMount at the levels that relax it.
func (e *pssEval) relaxedForUserNS() bool { return e.minor >= 35 && e.userNS }

func (e *pssEval) seccomp(subj, path string, p *corev1.SeccompProfile, name string) {
	if e.minor < 19 {
		return // annotations only, see annotations
	}
	if e.restricted && e.windows && e.minor >= 25 {
		return
	}
	if p != nil && p.Type != corev1.SeccompProfileTypeRuntimeDefault && p.Type != corev1.SeccompProfileTypeLocalhost {
		e.add(RuleSeccompProfile, subj, path+"/seccompProfile/type", fmt.Sprintf("sets the seccomp profile type %q", p.Type),
			"set securityContext.seccompProfile.type to RuntimeDefault (or Localhost with a profile)", name)
		return
	}
	if p == nil && name != "" && e.restricted && e.psc.SeccompProfile == nil {
		e.add(RuleSeccompProfile, subj, path+"/seccompProfile", "has no seccomp profile (neither it nor the pod sets seccompProfile)",
			"set securityContext.seccompProfile.type: RuntimeDefault on the pod or the container", name)
	}
}

// SELinux types the baseline level allows; 1.31 added container_engine_t.
var seLinuxTypes = []string{"", "container_t", "container_init_t", "container_kvm_t"}

func (e *pssEval) seLinux(subj, path string, o *corev1.SELinuxOptions, name string) {
	if o == nil {
		return
	}
	var bad []string
	if !slices.Contains(seLinuxTypes, o.Type) && (e.minor < 31 || o.Type != "container_engine_t") {
		bad = append(bad, fmt.Sprintf("type %q", o.Type))
	}
	if o.User != "" {
		bad = append(bad, fmt.Sprintf("user %q", o.User))
	}
	if o.Role != "" {
		bad = append(bad, fmt.Sprintf("role %q", o.Role))
	}
	if len(bad) > 0 {
		e.add(RuleSELinuxOptions, subj, path+"/seLinuxOptions", "sets the SELinux "+strings.Join(bad, ", "),
			"remove seLinuxOptions.user and role; the type may only be container_t, container_init_t or container_kvm_t (container_engine_t from 1.31)", name)
	}
}

func (e *pssEval) appArmor(subj, path string, p *corev1.AppArmorProfile, name string) {
	if p != nil && p.Type != corev1.AppArmorProfileTypeRuntimeDefault && p.Type != corev1.AppArmorProfileTypeLocalhost {
		e.add(RuleAppArmorProfile, subj, path+"/appArmorProfile/type", fmt.Sprintf("sets the AppArmor profile type %q", p.Type),
			"set securityContext.appArmorProfile.type to RuntimeDefault or Localhost, or remove it", name)
	}
}

// annotations checks the deprecated AppArmor and seccomp annotations of
// the pod template.
func (e *pssEval) annotations(cs []container) {
	ann := e.o.Pod.Annotations
	if len(ann) == 0 {
		return
	}
	at := func(k string) string { return e.o.annotationsPath() + "/" + escapePointer(k) }
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := ann[k]
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) &&
			v != "" && v != corev1.DeprecatedAppArmorBetaProfileRuntimeDefault && !strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix) {
			e.add(RuleAppArmorProfile, "pod template", at(k), fmt.Sprintf("sets the AppArmor profile %q in the annotation %s", v, k),
				"use runtime/default or localhost/PROFILE, or remove the annotation", "")
		}
	}
	if e.minor >= 19 {
		return
	}
	okSeccomp := func(v string) bool {
		return v == corev1.SeccompProfileRuntimeDefault || v == corev1.DeprecatedSeccompProfileDockerDefault || strings.HasPrefix(v, corev1.SeccompLocalhostProfileNamePrefix)
	}
	if v, ok := ann[corev1.SeccompPodAnnotationKey]; ok && !okSeccomp(v) {
		e.add(RuleSeccompProfile, "pod template", at(corev1.SeccompPodAnnotationKey), fmt.Sprintf("sets the seccomp profile %q in the annotation %s", v, corev1.SeccompPodAnnotationKey),
			"use runtime/default or localhost/PROFILE", "")
	}
	for _, c := range cs {
		k := corev1.SeccompContainerAnnotationKeyPrefix + c.Name
		if v, ok := ann[k]; ok && !okSeccomp(v) {
			e.add(RuleSeccompProfile, containerSubject(c), at(k), fmt.Sprintf("sets the seccomp profile %q in the annotation %s", v, k),
				"use runtime/default or localhost/PROFILE", c.Name)
		}
	}
}
