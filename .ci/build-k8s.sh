#!/usr/bin/env bash
# Builds kube-apiserver, etcd, kubectl, kubelet, kube-controller-manager and
# helm from the Go module proxy
# into $BULWARK_K8S_DIR (default $HOME/.cache/bulwark/k8s-$K8S_VERSION),
# each only when missing. Used by .ci/run for the admission end-to-end
# tests (internal/k8stest, internal/admissione2e, the Helm chart test) and
# the runtime control loop's test on a real node (internal/controle2e:
# kubelet and kube-controller-manager, ~3 min each more with the module
# cache warm).
# Cold: 13-25 min on 2 cores (13 min on a quiet machine after cosign shared
# the dependencies; kube-apiserver alone 6-17 min); cached: instant.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
out=${BULWARK_K8S_DIR:-$HOME/.cache/bulwark/k8s-$K8S_VERSION}
mkdir -p "$out"
if [[ -x $out/kube-apiserver && -x $out/etcd && -x $out/kubectl && -x $out/helm && -x $out/kubelet && -x $out/kube-controller-manager ]]; then
  echo "k8s binaries cached in $out"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

if [[ ! -x $out/etcd ]]; then
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init bulwark.local/etcd >/dev/null 2>&1
  go mod edit -require=go.etcd.io/etcd/server/v3@$ETCD_VERSION
  for m in api client/pkg client/v3 pkg; do
    go mod edit -replace=go.etcd.io/etcd/$m/v3=go.etcd.io/etcd/$m/v3@$ETCD_VERSION
  done
  cat > tools.go <<'G'
//go:build tools
package tools
import _ "go.etcd.io/etcd/server/v3"
G
  go mod tidy >/dev/null 2>&1 || true
  go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$out/etcd.tmp" "$out/etcd"
fi

if [[ ! -x $out/kube-apiserver || ! -x $out/kubectl || ! -x $out/kubelet || ! -x $out/kube-controller-manager ]]; then
  mkdir -p "$work/k8s" && cd "$work/k8s"
  go mod init bulwark.local/k8s >/dev/null 2>&1
  modfile=$(go mod download -json k8s.io/kubernetes@$K8S_VERSION | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  stage=${K8S_VERSION/v1./v0.}
  go mod edit -require=k8s.io/kubernetes@$K8S_VERSION
  for m in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile"); do
    case $m in k8s.io/sample-cli-plugin|k8s.io/sample-controller) continue ;; esac
    go mod edit -replace=$m=$m@$stage
  done
  cat > tools.go <<'G'
//go:build tools
package tools
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
G
  go mod tidy >/dev/null 2>&1 || go mod tidy
  ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo $K8S_VERSION | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  # Each only when missing: a cache that has the others builds the new ones alone.
  for b in kubectl kube-apiserver kubelet kube-controller-manager; do
    [[ -x $out/$b ]] && continue
    go build -trimpath -ldflags "$ld" -o "$out/$b.tmp" k8s.io/kubernetes/cmd/$b
    mv "$out/$b.tmp" "$out/$b"
  done
fi
if [[ ! -x $out/helm ]]; then
  # helm's go.mod has no replace lines: go install builds it as is.
  mkdir -p "$work/helm"
  GOBIN="$work/helm" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm@$HELM_VERSION
  mv "$work/helm/helm" "$out/helm"
fi
echo "k8s binaries built in $out"
