// Package governance answers the regulator's questions about data: which
// services reach which data, under which regulation, in which region, and
// which access was inappropriate.
//
// A Catalogue (YAML) names data classes ("pii-eu", "phi", "pci-pan"), the
// regulations that govern them (GDPR, HIPAA, PCI DSS, CCPA, LGPD, PIPEDA)
// with their residency (the regions the data may be processed in) and
// retention, the data stores that hold each class (a database's address,
// a bucket, a secret), the applications granted each class, and the
// region of each node. Observed flows (a workload's connection to an
// address, reported by its node's agent) are matched to the data stores;
// Build turns catalogue, flows and released secrets into a Report per
// regulation and class, and Check flags each flow that has no grant or
// ran outside the allowed regions.
//
// The catalogue is the server's, never the workload's: a flow's service
// (application) and region come from what the server knows of the
// reporting node and the container's image, not from anything the
// workload says. See docs/governance.md.
//
// This is not internal/secrets (the in-image secret scanner) nor
// internal/secretstore (the store of secrets released to workloads),
// which uses a Catalogue for data-class residency and grants.
package governance
