package policy

// Example is the starting policy `bulwark policy init` writes. Every key is
// optional; the values shown are the defaults unless marked "example".
const Example = `# Bulwark gold-image policy. Reference: docs/policy.md
apiVersion: bulwark.dev/v1
kind: Policy
name: gold-images

builtins:
  vulnerabilities:
    maxSeverity: high        # deny findings at or above: low | medium | high | critical
    onlyFixable: false       # true: deny only findings that have a fix
  package-pins:              # example pins and bans
    allow:
      - {name: openssl, type: deb, versions: [">=3.0.15-1~deb12u1"]}
    deny:
      - {name: telnet, reason: cleartext protocol}
  base-image:
    approved: []             # e.g. registry.example.com/base/debian@sha256:...
  image-age:
    maxDays: 90
  non-root: {}               # USER must be set to a non-zero uid
  lean:
    maxSizeMB: 1024
    maxPackages: 0           # 0: no limit
    distroless: false        # true: no shell, no package manager
  required-labels:
    labels: [org.opencontainers.image.source, team]
  secrets: {}                # no private key, cloud credential or token in any layer
  inventory-complete: {}     # every package database and lock file read in whole (a damaged one hides packages)

rules:                       # your own rules: CEL over the input document
  - name: no-latest-base
    description: images must not be based on a floating tag
    condition: '!image.history.exists(h, h.contains("FROM") && h.contains(":latest"))'
    message: the image was built FROM a :latest tag

waivers: []                  # example:
#  - rule: vulnerabilities
#    images: ["registry.example.com/team/**"]
#    ids: [CVE-2024-0001]
#    reason: not reachable from the service's code path
#    owner: platform-security@example.com
#    expires: 2026-12-31
`
