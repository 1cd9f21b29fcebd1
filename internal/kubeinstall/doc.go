// Package kubeinstall builds the Kubernetes objects that run Bulwark's
// admission webhook in a cluster: Namespace, ServiceAccount, the
// configuration (ConfigMap, and a Secret for a server token), a Secret
// with a serving certificate made here (internal/pki), Deployment,
// PodDisruptionBudget, Service, and the Mutating and Validating
// WebhookConfigurations whose caBundle verifies that certificate.
//
// The objects are k8s.io/api types marshalled with sigs.k8s.io/yaml, so
// what `bulwark admission install` prints is what the API server gets.
// The Helm chart in deploy/helm/bulwark-admission renders the same
// objects; docs/kubernetes.md describes both.
package kubeinstall
