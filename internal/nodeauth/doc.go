// Package nodeauth authenticates node agents by the projected service
// account token the kubelet gives their pod, the way SPIRE's k8s_psat
// node attestor does: the server asks the cluster (a TokenReview) whether
// the token is valid for its audience and whose it is, takes the node
// from the pod the token is bound to, and reads that pod to check it
// still exists, is the same pod (UID) and runs on that node. The agent
// then speaks for that node only, as a node:NAME API token would.
//
// No token is ever logged or stored: the cache of reviews is keyed by the
// token's SHA-256 and holds an answer at most CacheFor (60 s) and never
// past the token's expiry. A cluster that cannot answer is an
// *UnavailableError (the API answers 503), never a refusal and never an
// allow; a token the cluster refuses is a *RefusedError (401).
package nodeauth
