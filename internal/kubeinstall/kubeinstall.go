package kubeinstall

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-sec/bulwark/internal/pki"
)

// Defaults of Options' zero fields.
const (
	DefaultNamespace = "bulwark-system"
	DefaultName      = "bulwark-admission"
	DefaultReplicas  = 2
	// DefaultTimeoutSeconds is the API server's wait for one webhook call.
	// A known digest is decided in microseconds; an unknown one may take
	// up to the webhook's verifyBudget (2 s by default) to resolve and
	// verify. 5 s leaves room for that, so the denial the user sees is
	// Bulwark's own message rather than the API server's timeout, and it
	// stays well below the 10 s default that stalls every pod create
	// when a webhook hangs.
	DefaultTimeoutSeconds = 5
	DefaultCertValidity   = 365 * 24 * time.Hour
)

// Paths inside the webhook's container.
const (
	ConfigDir = "/etc/bulwark/admission"
	TLSDir    = "/etc/bulwark/tls"
	// CacheDir is a writable emptyDir for the admission configuration's
	// server.cacheFile (e.g. /var/cache/bulwark/feed.json): the feed state
	// survives container restarts.
	CacheDir = "/var/cache/bulwark"
	// Port is the container's HTTPS port; the Service exposes it as 443.
	Port = 8443
)

// Webhook names, as they appear in API server errors.
const (
	MutatingWebhookName   = "mutate.admission.bulwark.dev"
	ValidatingWebhookName = "validate.admission.bulwark.dev"
)

// Options says what to install.
type Options struct {
	// Namespace of the webhook (created); default bulwark-system.
	Namespace string
	// Name of the Deployment, Service, webhook configurations and the
	// other objects; default bulwark-admission.
	Name string
	// Image is the bulwark container image to run. Required.
	Image string
	// Replicas of the Deployment; default 2 (the webhooks fail closed, so
	// one replica going away must not stop every pod create).
	Replicas int32
	// TimeoutSeconds of the webhook calls (1-30); default 5.
	TimeoutSeconds int32
	// CertValidity of the generated CA and serving certificate; default
	// one year.
	CertValidity time.Duration
	// Config is the admission configuration and the files it names
	// (CollectConfig reads them).
	Config *ConfigFiles
	// ExcludeNamespaces are left out of admission in addition to
	// kube-system and Namespace.
	ExcludeNamespaces []string
}

// Bundle is what Build made.
type Bundle struct {
	// Objects in apply order.
	Objects []any
	// CAPEM is the caBundle of the webhook configurations; Cert the
	// serving certificate it verifies.
	CAPEM []byte
	Cert  pki.Pair
	// ServiceHost is the DNS name the API server calls
	// (NAME.NAMESPACE.svc).
	ServiceHost string
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (o *Options) fill() error {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	for what, v := range map[string]string{"namespace": o.Namespace, "name": o.Name} {
		if len(v) > 63 || !dnsLabel.MatchString(v) {
			return fmt.Errorf("%s %q is not a DNS label (lower-case letters, digits and '-', at most 63)", what, v)
		}
	}
	if o.Image == "" {
		return errors.New("no container image given (the bulwark image to run)")
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.Replicas < 0 {
		return fmt.Errorf("replicas %d: want at least 1", o.Replicas)
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if o.TimeoutSeconds < 1 || o.TimeoutSeconds > 30 {
		return fmt.Errorf("timeout %ds: the API server allows 1 to 30 seconds", o.TimeoutSeconds)
	}
	if o.CertValidity == 0 {
		o.CertValidity = DefaultCertValidity
	}
	if o.CertValidity < time.Hour {
		return fmt.Errorf("certificate validity %s: want at least 1h", o.CertValidity)
	}
	if o.Config == nil {
		return errors.New("no admission configuration given")
	}
	return nil
}

// Build makes a CA and serving certificate and the objects.
func Build(o Options) (*Bundle, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	ca, err := pki.NewCA(o.Name+"-ca", o.CertValidity)
	if err != nil {
		return nil, err
	}
	host := o.Name + "." + o.Namespace + ".svc"
	cert, err := ca.Issue(pki.Request{
		CommonName: host,
		DNSNames:   []string{host, host + ".cluster.local", o.Name + "." + o.Namespace, o.Name},
		Server:     true,
		ValidFor:   o.CertValidity,
	})
	if err != nil {
		return nil, err
	}
	b := &Bundle{CAPEM: ca.CertPEM, Cert: cert, ServiceHost: host}
	b.Objects = objects(o, ca.CertPEM, cert)
	return b, nil
}

// YAML is the objects as one multi-document YAML stream.
func (b *Bundle) YAML() ([]byte, error) {
	var out bytes.Buffer
	for i, obj := range b.Objects {
		y, err := encode(obj)
		if err != nil {
			return nil, fmt.Errorf("encoding object %d: %w", i, err)
		}
		out.WriteString("---\n")
		out.Write(y)
	}
	return out.Bytes(), nil
}

// encode is obj as YAML without the (zero) status the API types carry.
func encode(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status") // desired state only; the API server owns status
	return yaml.Marshal(m)
}

func labels(o Options) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "bulwark-admission",
		"app.kubernetes.io/instance":   o.Name,
		"app.kubernetes.io/part-of":    "bulwark",
		"app.kubernetes.io/managed-by": "bulwark",
	}
}

func selector(o Options) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "bulwark-admission", "app.kubernetes.io/instance": o.Name}
}

func meta(o Options, name string, namespaced bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Labels: labels(o)}
	if namespaced {
		m.Namespace = o.Namespace
	}
	return m
}

func objects(o Options, caPEM []byte, cert pki.Pair) []any {
	tlsName := o.Name + "-tls"
	cfgName := o.Name + "-config"
	ns := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "bulwark"}},
	}
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: meta(o, o.Name, true),
		// The webhook reads nothing from the API server: no token, and no
		// Role or binding.
		AutomountServiceAccountToken: ptr(false),
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta(o, cfgName, true),
		Data:       map[string]string{},
	}
	secretFiles := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(o, o.Name+"-files", true),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{},
	}
	var cmItems, secretItems []corev1.KeyToPath
	for _, f := range o.Config.Files {
		item := corev1.KeyToPath{Key: f.Key, Path: f.Path}
		if f.Secret {
			secretFiles.Data[f.Key] = f.Data
			secretItems = append(secretItems, item)
		} else {
			cm.Data[f.Key] = string(f.Data)
			cmItems = append(cmItems, item)
		}
	}
	tlsSecret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(o, tlsName, true),
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert.CertPEM, corev1.TLSPrivateKeyKey: cert.KeyPEM},
	}

	sources := []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
		LocalObjectReference: corev1.LocalObjectReference{Name: cfgName}, Items: cmItems,
	}}}
	if len(secretItems) > 0 {
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: secretFiles.Name}, Items: secretItems,
		}})
	}
	// Pods roll when the configuration or the certificate changes.
	sum := sha256.New()
	for _, f := range o.Config.Files {
		fmt.Fprintf(sum, "%s\x00%d\x00", f.Path, len(f.Data))
		sum.Write(f.Data)
	}
	sum.Write(cert.CertPEM)

	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("https"), Scheme: corev1.URISchemeHTTPS}},
			PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	podLabels := labels(o)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(o, o.Name, true),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(o.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector(o)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      podLabels,
					Annotations: map[string]string{"bulwark.dev/config-sha256": hex.EncodeToString(sum.Sum(nil))},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName:           sa.Name,
					AutomountServiceAccountToken: ptr(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr(true),
						RunAsUser:      ptr(int64(65532)),
						RunAsGroup:     ptr(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: selector(o)},
								TopologyKey:   "kubernetes.io/hostname",
							},
						}},
					}},
					Containers: []corev1.Container{{
						Name:  "webhook",
						Image: o.Image,
						Args: []string{
							"admission", "serve",
							"--admission-config", ConfigDir + "/" + o.Config.Main,
							"--listen", fmt.Sprintf(":%d", Port),
							"--tls-cert", TLSDir + "/" + corev1.TLSCertKey,
							"--tls-key", TLSDir + "/" + corev1.TLSPrivateKeyKey,
							"--log-format", "json", "--log-level", "info",
						},
						Ports:          []corev1.ContainerPort{{Name: "https", ContainerPort: Port, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: probe("/readyz"),
						LivenessProbe:  probe("/healthz"),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr(false),
							ReadOnlyRootFilesystem:   ptr(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: ConfigDir, ReadOnly: true},
							{Name: "tls", MountPath: TLSDir, ReadOnly: true},
							{Name: "tmp", MountPath: "/tmp"},
							{Name: "cache", MountPath: CacheDir},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}},
						{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: tlsName}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
	pdb := &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(o, o.Name, true),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: selector(o)},
		},
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(o, o.Name, true),
		Spec: corev1.ServiceSpec{
			Selector: selector(o),
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromString("https"), Protocol: corev1.ProtocolTCP}},
		},
	}
	mutating, validating := WebhookConfigurations(o, caPEM, func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: o.Name, Path: ptr(path), Port: ptr(int32(443))},
			CABundle: caPEM,
		}
	})
	out := []any{ns, sa, cm}
	if len(secretFiles.Data) > 0 {
		out = append(out, secretFiles)
	}
	return append(out, tlsSecret, dep, pdb, svc, mutating, validating)
}

// WebhookConfigurations returns the mutating and validating
// configurations for o with the client configuration client(path) (a
// Service in the cluster; tests point it at a URL).
func WebhookConfigurations(o Options, caPEM []byte, client func(path string) admissionregistrationv1.WebhookClientConfig) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = DefaultTimeoutSeconds
	}
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	scope := ptr(admissionregistrationv1.NamespacedScope)
	rules := []admissionregistrationv1.RuleWithOperations{
		{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Scope: scope,
			// pods/ephemeralcontainers: `kubectl debug` adds containers
			// through this subresource; their images are checked too.
			Resources: []string{"pods", "pods/ephemeralcontainers"},
		}},
		{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Scope: scope,
			Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"},
		}},
		{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Scope: scope,
			Resources: []string{"jobs", "cronjobs"},
		}},
	}
	excluded := append([]string{"kube-system", o.Namespace}, o.ExcludeNamespaces...)
	slices.Sort(excluded)
	excluded = slices.Compact(excluded)
	nsSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: excluded,
	}}}
	fail := ptr(admissionregistrationv1.Fail)
	none := ptr(admissionregistrationv1.SideEffectClassNone)
	equivalent := ptr(admissionregistrationv1.Equivalent)
	m := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: meta(o, o.Name, false),
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    MutatingWebhookName,
			ClientConfig:            client("/mutate"),
			Rules:                   rules,
			FailurePolicy:           fail,
			MatchPolicy:             equivalent,
			NamespaceSelector:       nsSel,
			SideEffects:             none,
			TimeoutSeconds:          ptr(o.TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			// Called again when a later mutating webhook adds a container,
			// so its tag is pinned too.
			ReinvocationPolicy: ptr(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: meta(o, o.Name, false),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    ValidatingWebhookName,
			ClientConfig:            client("/validate"),
			Rules:                   rules,
			FailurePolicy:           fail,
			MatchPolicy:             equivalent,
			NamespaceSelector:       nsSel,
			SideEffects:             none,
			TimeoutSeconds:          ptr(o.TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	return m, v
}

func ptr[T any](v T) *T { return &v }
