#!/usr/bin/env bash
# Regenerates hack/tools/k8s/go.mod for a Kubernetes release.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0 and
# resolves them through ./staging replaces, which Go ignores in a dependency. We pin each one to the
# tag published for the same release (v1.36.3 -> v0.36.3). etcd's server module is built from the
# same module graph because Kubernetes already pins it. kwok is deliberately not here: its go.mod
# raises grpc/otel above Kubernetes' pins, so it is installed on its own (see build.sh).
#
# Usage: hack/tools/k8s/gen-gomod.sh v1.36.3 && (cd hack/tools/k8s && go mod tidy)
set -euo pipefail
release=${1:?usage: gen-gomod.sh vMAJOR.MINOR.PATCH}
staging="v0.${release#v1.}"
cd "$(dirname "$0")"
upstream=$(cd / && GOFLAGS= go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@${release}")
go_version=$(awk '$1 == "go" { print $2; exit }' "$upstream")
{
  printf 'module vaultctl.local/tools/k8s\n\ngo %s\n\n' "$go_version"
  printf 'tool (\n\tgo.etcd.io/etcd/server/v3\n'
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    printf '\tk8s.io/kubernetes/cmd/%s\n' "$cmd"
  done
  printf ')\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$release"
  awk '/^require \(/ { in_req = 1; next } in_req && /^\)/ { in_req = 0 } in_req && $2 == "v0.0.0" { print $1 }' "$upstream" |
    sort -u | while read -r mod; do printf '\t%s => %s %s\n' "$mod" "$mod" "$staging"; done
  printf ')\n'
} > go.mod
