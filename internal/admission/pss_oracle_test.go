package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
)

// The oracle: k8s.io/pod-security-admission, the code the API server's own
// PodSecurity admission runs. Bulwark's level verdict must equal its
// verdict, check by check, for every level and version.

// psaGroup maps pod-security-admission's forbidden reasons to a check.
var psaGroup = map[string]string{
	"allowPrivilegeEscalation != false": RuleAllowPrivilegeEscalation,
	"forbidden sysctls":                 RuleSysctls,
	"host namespaces":                   "hostNamespaces",
	"hostPath volumes":                  RuleHostPath,
	"hostPort":                          RuleHostPorts,
	"hostProcess":                       RuleWindowsHostProcess,
	"non-default capabilities":          RuleCapabilities,
	"unrestricted capabilities":         RuleCapabilities,
	"privileged":                        RulePrivileged,
	"probe or lifecycle host":           RuleHostProbes,
	"procMount":                         RuleProcMount,
	"restricted volume types":           RuleRestrictedVolumes,
	"runAsNonRoot != true":              RuleRunAsNonRoot,
	"runAsUser=0":                       RuleRunAsUser,
	"seLinuxOptions":                    RuleSELinuxOptions,
	"seccompProfile":                    RuleSeccompProfile,
	"forbidden AppArmor profile":        RuleAppArmorProfile,
	"forbidden AppArmor profiles":       RuleAppArmorProfile,
}

// bulwarkGroup maps a Bulwark rule to the check it belongs to at level.
func bulwarkGroup(rule, level string) string {
	switch rule {
	case RuleHostPID, RuleHostIPC, RuleHostNetwork:
		return "hostNamespaces"
	case RuleHostPath:
		if level == LevelRestricted {
			return RuleRestrictedVolumes
		}
	}
	return rule
}

type oracle struct{ ev psapolicy.Evaluator }

func newOracle(t testing.TB) oracle {
	ev, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return oracle{ev}
}

// verdict returns the checks pod-security-admission fails pod on.
func (o oracle) verdict(t testing.TB, pod *corev1.Pod, level Level) []string {
	lv := psaapi.LevelVersion{Level: psaapi.Level(level.Name), Version: psaapi.LatestVersion()}
	if level.Pinned {
		lv.Version = psaapi.MajorMinorVersion(1, level.Minor)
	}
	var out []string
	for _, r := range o.ev.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec) {
		if r.Allowed {
			continue
		}
		g, ok := psaGroup[r.ForbiddenReason]
		if !ok {
			t.Fatalf("unknown forbidden reason %q (%s): map it", r.ForbiddenReason, r.ForbiddenDetail)
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}

// bulwarkVerdict returns the checks Bulwark's level fails o on.
func bulwarkVerdict(t testing.TB, o *Object, level Level) ([]string, []Finding) {
	fs := levelRules(o, level, Enforce, nil, nil)
	var out []string
	for _, f := range fs {
		if f.Level != level.String() || f.Path == "" {
			t.Fatalf("finding without level or path: %+v", f)
		}
		if g := bulwarkGroup(f.Rule, level.Name); !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out, fs
}

// levels are every level at every version, latest and one beyond.
func oracleLevels() []Level {
	var out []Level
	for _, name := range []string{LevelPrivileged, LevelBaseline, LevelRestricted} {
		out = append(out, Level{Name: name})
		for m := 0; m <= LatestMinor+3; m++ {
			out = append(out, Level{Name: name, Pinned: true, Minor: m})
		}
	}
	return out
}

func compareOracle(t *testing.T, or oracle, levels []Level, name string, pod *corev1.Pod) bool {
	t.Helper()
	// Through JSON and DecodeObject, as the webhook reads a pod.
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	o, err := DecodeObject("Pod", raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range levels {
		want := or.verdict(t, pod, l)
		got, fs := bulwarkVerdict(t, o, l)
		if !slices.Equal(got, want) {
			var msgs []string
			for _, f := range fs {
				msgs = append(msgs, f.Message())
			}
			t.Errorf("%s at %s: Bulwark fails %v, pod-security-admission fails %v\nfindings: %s", name, l, got, want, strings.Join(msgs, "\n  "))
			return false
		}
	}
	return true
}

// TestLevelAgreesWithPodSecurityAdmission: every seed pod, every single
// mutation of it, every pair of mutations of the restricted seed and
// random triples, at every level and version: Bulwark fails exactly the
// checks pod-security-admission fails (so a pod the standard admits is
// never denied by the level, and one it refuses is never admitted).
func TestLevelAgreesWithPodSecurityAdmission(t *testing.T) {
	or := newOracle(t)
	levels := oracleLevels()
	muts := podMutations()
	seeds := seedPods()
	n := 0
	for sname, seed := range seeds {
		if !compareOracle(t, or, levels, sname, seed) {
			continue
		}
		n++
		for _, m := range muts {
			p := seed.DeepCopy()
			m.f(p)
			n++
			compareOracle(t, or, levels, sname+"+"+m.name, p)
		}
	}
	// Pairs on the restricted seed, at a version on each side of every
	// change and latest.
	few := []Level{}
	for _, l := range levels {
		if !l.Pinned || slices.Contains([]int{0, 18, 19, 22, 23, 25, 27, 30, 31, 34, 35, 36, 37}, l.Minor) {
			few = append(few, l)
		}
	}
	for i, a := range muts {
		for _, b := range muts[i+1:] {
			p := seeds["restricted"].DeepCopy()
			a.f(p)
			b.f(p)
			n++
			if !compareOracle(t, or, few, "restricted+"+a.name+"+"+b.name, p) && t.Failed() && n > 50 {
				return
			}
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	names := make([]string, 0, len(seeds))
	for k := range seeds {
		names = append(names, k)
	}
	sort.Strings(names)
	for range 1000 {
		sname := names[rnd.IntN(len(names))]
		p := seeds[sname].DeepCopy()
		desc := sname
		for range 3 {
			m := muts[rnd.IntN(len(muts))]
			m.f(p)
			desc += "+" + m.name
		}
		n++
		compareOracle(t, or, few, desc, p)
	}
	t.Logf("%d pods, each at up to %d levels", n, len(levels))
}

// TestLevelParse: the spellings of --level and pods.level.
func TestLevelParse(t *testing.T) {
	for in, want := range map[string]string{
		"restricted": "restricted:latest", "baseline:latest": "baseline:latest", "baseline:v1.35": "baseline:v1.35",
		"privileged:v1.0": "privileged:v1.0", "restricted:v1.99": "restricted:v1.99",
	} {
		l, err := ParseLevel(in)
		if err != nil || l.String() != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %s", in, l, err, want)
		}
	}
	for _, bad := range []string{"", "Restricted", "strict", "restricted:", "restricted:1.35", "restricted:v2.0", "restricted:v1.035", "restricted:v1.-1", "baseline:v1.35:x", "restricted:v1.99999"} {
		var le *LevelError
		if _, err := ParseLevel(bad); err == nil || !errors.As(err, &le) {
			t.Errorf("ParseLevel(%q): %v, want a *LevelError", bad, err)
		}
	}
	// A pinned version beyond the newest implemented evaluates the newest
	// checks, as pod-security-admission does.
	if l, _ := ParseLevel("restricted:v1.99"); l.minor() != LatestMinor {
		t.Errorf("v1.99 evaluates as v1.%d", l.minor())
	}
}

type podMutation struct {
	name string
	f    func(*corev1.Pod)
}

// seedPods are pods the mutations start from.
func seedPods() map[string]*corev1.Pod {
	restricted := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			InitContainers: []corev1.Container{{Name: "init", Image: "i", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
			Containers: []corev1.Container{{Name: "app", Image: "a", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
			Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "a"}}}}
	windows := restricted.DeepCopy()
	windows.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	userns := restricted.DeepCopy()
	userns.Spec.HostUsers = ptr.To(false)
	userns.Spec.SecurityContext.RunAsNonRoot = nil
	userns.Spec.SecurityContext.RunAsUser = ptr.To[int64](0)
	perContainer := bare.DeepCopy()
	perContainer.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
		AllowPrivilegeEscalation: ptr.To(false), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")},
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
	perContainer.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "d"}}}
	return map[string]*corev1.Pod{"restricted": restricted, "bare": bare, "windows": windows, "userns": userns, "perContainer": perContainer}
}

// csc is the security context of the pod's first container.
func csc(p *corev1.Pod) *corev1.SecurityContext {
	c := &p.Spec.Containers[0]
	if c.SecurityContext == nil {
		c.SecurityContext = &corev1.SecurityContext{}
	}
	return c.SecurityContext
}

func psc(p *corev1.Pod) *corev1.PodSecurityContext {
	if p.Spec.SecurityContext == nil {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	return p.Spec.SecurityContext
}

func caps(p *corev1.Pod) *corev1.Capabilities {
	sc := csc(p)
	if sc.Capabilities == nil {
		sc.Capabilities = &corev1.Capabilities{}
	}
	return sc.Capabilities
}

func annotate(p *corev1.Pod, k, v string) {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[k] = v
}

func volume(name string, src corev1.VolumeSource) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: src})
	}
}

// mutationName spells a value for a mutation's name.
func mutationName(field string, v any) string { return fmt.Sprintf("%s=%v", field, v) }

// BenchmarkLevel: Bulwark's restricted level on the restricted seed pod
// (what bench/admission reviews), and pod-security-admission's evaluator
// on the same pod for scale.
func BenchmarkLevel(b *testing.B) {
	pod := seedPods()["restricted"]
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	o, err := DecodeObject("Pod", raw)
	if err != nil {
		b.Fatal(err)
	}
	l := Level{Name: LevelRestricted}
	b.Run("bulwark", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if fs := levelRules(o, l, Enforce, nil, nil); len(fs) != 0 {
				b.Fatal(fs)
			}
		}
	})
	b.Run("pod-security-admission", func(b *testing.B) {
		or := newOracle(b)
		lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
		b.ReportAllocs()
		for b.Loop() {
			if rs := psapolicy.AggregateCheckResults(or.ev.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec)); !rs.Allowed {
				b.Fatal(rs.ForbiddenReasons)
			}
		}
	})
}
