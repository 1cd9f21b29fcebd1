package admission

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// podMutations change one field each, to an allowed or a forbidden value
// of some level or version.
func podMutations() []podMutation {
	var ms []podMutation
	add := func(name string, f func(*corev1.Pod)) { ms = append(ms, podMutation{name, f}) }

	add("hostNetwork", func(p *corev1.Pod) { p.Spec.HostNetwork = true })
	add("hostPID", func(p *corev1.Pod) { p.Spec.HostPID = true })
	add("hostIPC", func(p *corev1.Pod) { p.Spec.HostIPC = true })
	add("privileged", func(p *corev1.Pod) { csc(p).Privileged = ptr.To(true) })
	add("privileged=false", func(p *corev1.Pod) { csc(p).Privileged = ptr.To(false) })
	for _, c := range []corev1.Capability{"NET_RAW", "SYS_ADMIN", "CHOWN", "NET_BIND_SERVICE", "net_bind_service", "CAP_CHOWN", "SYS_CHROOT"} {
		add(mutationName("capAdd", c), func(p *corev1.Pod) { caps(p).Add = append(caps(p).Add, c) })
	}
	add("capDrop=all", func(p *corev1.Pod) { caps(p).Drop = []corev1.Capability{"all"} })
	add("capDrop=NET_RAW", func(p *corev1.Pod) { caps(p).Drop = []corev1.Capability{"NET_RAW"} })
	add("capDrop=ALL,NET_RAW", func(p *corev1.Pod) { caps(p).Drop = []corev1.Capability{"NET_RAW", "ALL"} })
	add("capabilities=nil", func(p *corev1.Pod) { csc(p).Capabilities = nil })
	add("securityContext=nil", func(p *corev1.Pod) { p.Spec.Containers[0].SecurityContext = nil })
	add("podSecurityContext=nil", func(p *corev1.Pod) { p.Spec.SecurityContext = nil })

	add("hostPath", volume("h", corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run"}}))
	add("nfs", volume("n", corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}}))
	add("gitRepo", volume("g", corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{Repository: "r"}}))
	add("noSource", volume("x", corev1.VolumeSource{}))
	add("configMap", volume("c", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}))
	add("imageVolume", volume("i", corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "r"}}))
	add("pvc", volume("v", corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}))
	add("projected", volume("pr", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}))

	add("hostPort", func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 80, HostPort: 8080})
	})
	add("hostPort=0", func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 80})
	})
	add("initHostPort", func(p *corev1.Pod) {
		if len(p.Spec.InitContainers) > 0 {
			p.Spec.InitContainers[0].Ports = []corev1.ContainerPort{{ContainerPort: 1, HostPort: 1}}
		}
	})

	http := func(host string) *corev1.HTTPGetAction {
		return &corev1.HTTPGetAction{Host: host, Port: intstr.FromInt32(8080), Path: "/healthz"}
	}
	tcp := func(host string) *corev1.TCPSocketAction {
		return &corev1.TCPSocketAction{Host: host, Port: intstr.FromInt32(8080)}
	}
	add("livenessHost", func(p *corev1.Pod) {
		p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: http("169.254.169.254")}}
	})
	add("livenessNoHost", func(p *corev1.Pod) {
		p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: http("")}}
	})
	add("readinessTCPHost", func(p *corev1.Pod) {
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: tcp("10.0.0.1")}}
	})
	add("startupHost", func(p *corev1.Pod) {
		p.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: http("localhost")}}
	})
	add("postStartHost", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{HTTPGet: http("10.0.0.1")}}
	})
	add("preStopTCPHost", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{TCPSocket: tcp("10.0.0.1")}}
	})
	add("preStopSleep", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	})

	add("procMount=Unmasked", func(p *corev1.Pod) { csc(p).ProcMount = ptr.To(corev1.UnmaskedProcMount) })
	add("procMount=Default", func(p *corev1.Pod) { csc(p).ProcMount = ptr.To(corev1.DefaultProcMount) })

	for _, t := range []corev1.SeccompProfileType{corev1.SeccompProfileTypeUnconfined, corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeLocalhost, "Bogus"} {
		add(mutationName("podSeccomp", t), func(p *corev1.Pod) { psc(p).SeccompProfile = &corev1.SeccompProfile{Type: t} })
		add(mutationName("seccomp", t), func(p *corev1.Pod) { csc(p).SeccompProfile = &corev1.SeccompProfile{Type: t} })
	}
	add("podSeccomp=nil", func(p *corev1.Pod) { psc(p).SeccompProfile = nil })
	for k, v := range map[string]string{
		"seccomp.security.alpha.kubernetes.io/pod":            "unconfined",
		"seccomp.security.alpha.kubernetes.io/pod ":           "runtime/default",
		"container.seccomp.security.alpha.kubernetes.io/app":  "unconfined",
		"container.seccomp.security.alpha.kubernetes.io/zz":   "unconfined",
		"container.seccomp.security.alpha.kubernetes.io/init": "localhost/p",
	} {
		add("annotation "+k+"="+v, func(p *corev1.Pod) { annotate(p, k, v) })
	}
	add("annotation seccomp pod docker/default", func(p *corev1.Pod) { annotate(p, "seccomp.security.alpha.kubernetes.io/pod", "docker/default") })

	for _, o := range []corev1.SELinuxOptions{{Type: "spc_t"}, {Type: "container_t"}, {Type: "container_engine_t"}, {User: "u"}, {Role: "r"}, {Level: "s0:c1,c2"}} {
		add(mutationName("podSELinux", o), func(p *corev1.Pod) { psc(p).SELinuxOptions = &o })
		add(mutationName("seLinux", o), func(p *corev1.Pod) { csc(p).SELinuxOptions = &o })
	}

	for _, t := range []corev1.AppArmorProfileType{corev1.AppArmorProfileTypeUnconfined, corev1.AppArmorProfileTypeLocalhost, corev1.AppArmorProfileTypeRuntimeDefault} {
		add(mutationName("podAppArmor", t), func(p *corev1.Pod) { psc(p).AppArmorProfile = &corev1.AppArmorProfile{Type: t} })
		add(mutationName("appArmor", t), func(p *corev1.Pod) { csc(p).AppArmorProfile = &corev1.AppArmorProfile{Type: t} })
	}
	for _, v := range []string{"unconfined", "runtime/default", "localhost/p", ""} {
		add("appArmorAnnotation="+v, func(p *corev1.Pod) { annotate(p, "container.apparmor.security.beta.kubernetes.io/app", v) })
	}

	for _, s := range []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_rmem",
		"net.ipv4.tcp_slow_start_after_idle", "kernel.msgmax", "net.core.somaxconn"} {
		add("sysctl="+s, func(p *corev1.Pod) { psc(p).Sysctls = append(psc(p).Sysctls, corev1.Sysctl{Name: s, Value: "1"}) })
	}

	add("podHostProcess", func(p *corev1.Pod) {
		psc(p).WindowsOptions = &corev1.WindowsSecurityContextOptions{HostProcess: ptr.To(true)}
	})
	add("hostProcess", func(p *corev1.Pod) {
		csc(p).WindowsOptions = &corev1.WindowsSecurityContextOptions{HostProcess: ptr.To(true)}
	})
	add("hostProcess=false", func(p *corev1.Pod) {
		csc(p).WindowsOptions = &corev1.WindowsSecurityContextOptions{HostProcess: ptr.To(false)}
	})

	add("allowPrivilegeEscalation=true", func(p *corev1.Pod) { csc(p).AllowPrivilegeEscalation = ptr.To(true) })
	add("allowPrivilegeEscalation=nil", func(p *corev1.Pod) { csc(p).AllowPrivilegeEscalation = nil })
	add("allowPrivilegeEscalation=false", func(p *corev1.Pod) { csc(p).AllowPrivilegeEscalation = ptr.To(false) })

	add("podRunAsNonRoot=false", func(p *corev1.Pod) { psc(p).RunAsNonRoot = ptr.To(false) })
	add("podRunAsNonRoot=nil", func(p *corev1.Pod) { psc(p).RunAsNonRoot = nil })
	add("runAsNonRoot=false", func(p *corev1.Pod) { csc(p).RunAsNonRoot = ptr.To(false) })
	add("runAsNonRoot=true", func(p *corev1.Pod) { csc(p).RunAsNonRoot = ptr.To(true) })
	add("podRunAsUser=0", func(p *corev1.Pod) { psc(p).RunAsUser = ptr.To[int64](0) })
	add("runAsUser=0", func(p *corev1.Pod) { csc(p).RunAsUser = ptr.To[int64](0) })
	add("runAsUser=1000", func(p *corev1.Pod) { csc(p).RunAsUser = ptr.To[int64](1000) })

	add("os=windows", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} })
	add("os=linux", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Linux} })
	add("hostUsers=false", func(p *corev1.Pod) { p.Spec.HostUsers = ptr.To(false) })
	add("hostUsers=true", func(p *corev1.Pod) { p.Spec.HostUsers = ptr.To(true) })

	add("ephemeralBare", func(p *corev1.Pod) {
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "d"}})
	})
	add("initPrivileged", func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "init2", Image: "i",
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true)}})
	})
	return ms
}
