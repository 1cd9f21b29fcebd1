// Package policy decides whether an image may become a gold image.
//
// A policy file (YAML) configures the built-in rules (vulnerabilities,
// package pins, approved base images, image age, non-root, lean image,
// required labels, secrets) and adds named rules whose conditions are CEL
// expressions (cel-go, as Kubernetes uses) over a documented input document
// (docs/policy.md). Waivers exempt an image, repository or package from a
// rule, with a reason, an owner and an expiry date; an expired waiver stops
// applying and is reported.
//
// Evaluate is a pure function of the Input (inventory, findings, secrets,
// image config), the policy and the time: the CLI, the server and the
// admission webhook all call it, and a Decision records the policy's digest
// so a certification says which policy it passed.
package policy
