// Package kube is the small Kubernetes API client the runtime responses
// use: a kubeconfig (client certificate or bearer token, the cluster's CA)
// or the in-cluster service account, and JSON GET, POST, PATCH and DELETE
// of k8s.io/api objects over REST.
//
// It is not client-go: the responses make a handful of calls (read a pod
// and its owners, delete a pod with a UID precondition, patch a
// controller's image, label a pod, create a NetworkPolicy), and the
// typed clientset would add most of client-go to the server's build.
// Failures come back as *StatusError with the API server's Status.
package kube
