// Package pki makes the small X.509 hierarchies Bulwark needs: a CA and
// certificates issued by it (the admission webhook's serving certificate
// and the caBundle the API server checks it with; the test cluster's
// apiserver, client and service-account keys). Keys are ECDSA P-256,
// encoded as PKCS#8 "PRIVATE KEY" PEM.
//
// It is not a general CA: no revocation, no renewal. A certificate made
// here is replaced by making a new one (`bulwark admission install` again).
package pki
