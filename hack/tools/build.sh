#!/usr/bin/env bash
# Builds the sandbox's pinned tools (Kubernetes control plane, etcd, kwok, Vault, the KMS emulator)
# into a cache outside the work tree, keyed by a hash of the pins, so a warm run costs seconds.
#
#   hack/tools/build.sh          build what is missing, print each step and its time
#   hack/tools/build.sh --dir    print the cache directory for the current pins and exit
#
# Environment: VAULTCTL_TOOLS_CACHE overrides the cache root
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/vaultctl/tools).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_release=v1.36.3
kwok_version=v0.8.0
vault_version=v1.21.1

# The hash covers every file that decides what gets built, and this script itself.
pins_hash=$(cd "$here" && cat build.sh k8s/go.mod k8s/go.sum vault/go.mod lkms/go.mod lkms/go.sum lkms/main.go |
  sha256sum | cut -c1-16)
root=${VAULTCTL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vaultctl/tools}
dir=$root/$pins_hash

if [[ "${1:-}" == "--dir" ]]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"

started=$(date +%s)
elapsed() { local s=$(( $(date +%s) - $1 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# step NAME CMD...: runs CMD unless $dir/NAME exists; output goes to a log, shown on failure.
step() {
  local name=$1; shift
  if [[ -x "$dir/$name" ]]; then
    echo "tools: $name: up to date"
    return
  fi
  local t0 log=$dir/$name.build.log
  t0=$(date +%s)
  echo "tools: $name: building..."
  if ! "$@" >"$log" 2>&1; then
    echo "tools: $name: BUILD FAILED after $(elapsed "$t0"); last lines of $log:" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
  [[ -x "$dir/$name.tmp" ]] || { echo "tools: $name: build produced no binary (see $log)" >&2; exit 1; }
  mv "$dir/$name.tmp" "$dir/$name"
  echo "tools: $name: built in $(elapsed "$t0")"
}

# Kubernetes binaries report v0.0.0-master unless the version variables are stamped, and Helm's
# kubeVersion checks then fail.
k8s_minor=$(echo "$k8s_release" | cut -d. -f2)
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_release -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=0000000000000000000000000000000000000000"
  k8s_ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build_k8s() { (cd "$here/k8s" && go build -trimpath -ldflags "$k8s_ldflags" -o "$dir/$1.tmp" "k8s.io/kubernetes/cmd/$1"); }
build_etcd() { (cd "$here/k8s" && go build -trimpath -ldflags "-s -w" -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3); }
build_kwok() {
  local gobin; gobin=$(mktemp -d)
  (cd / && GOBIN=$gobin GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok_version")
  mv "$gobin/kwok" "$dir/kwok.tmp" && rmdir "$gobin"
}
# -mod=mod fills go.sum on first use; see vault/go.mod for why tidy is not used.
build_vault() { (cd "$here/vault" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$dir/vault.tmp" github.com/hashicorp/vault); }
build_lkms() { (cd "$here/lkms" && go build -trimpath -ldflags "-s -w" -o "$dir/lkms.tmp" .); }

echo "tools: cache $dir"
step lkms build_lkms
step etcd build_etcd
step kube-apiserver build_k8s kube-apiserver
step kube-controller-manager build_k8s kube-controller-manager
step kube-scheduler build_k8s kube-scheduler
step kwok build_kwok
step vault build_vault
"$dir/vault" version | grep -q "Vault $vault_version" || { echo "tools: vault: unexpected version: $("$dir/vault" version)" >&2; exit 1; }
echo "tools: all tools ready in $(elapsed "$started") ($dir)"
