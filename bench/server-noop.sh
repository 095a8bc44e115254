#!/usr/bin/env bash
# Times a no-op `vaultctl apply --only tls,server` against a no-op Helm upgrade of the same chart
# and values done directly through the Helm SDK, on a running sandbox, and prints the ratio.
#
#   vaultctl-sandbox up --vault=false --postgres=false   # once; Kubernetes and KMS are enough
#   bench/server-noop.sh
#   BENCH_RUNS=15 bench/server-noop.sh
#   VAULTCTL_SANDBOX_DIR=/tmp/sb bench/server-noop.sh     # another sandbox
#   BENCH_KEEP=1 bench/server-noop.sh                     # keep the install afterwards
#
# It installs release "vault" (tls + server phases) in a namespace of its own, vault-bench-PID,
# on hostPath volumes it creates pre-bound to the claims (the sandbox has no provisioner and its
# own volumes belong to the regular install). The timed vaultctl runs must report both phases "up
# to date" and write no Helm revision; the Helm SDK side writes a revision per run (Helm has no
# no-op detection). Afterwards the release, namespace and volumes are removed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${BENCH_RUNS:-7}
namespace=vault-bench-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/vaultctl-server-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cd "$repo"
go build -o "$work/vaultctl" ./cmd/vaultctl
go build -o "$work/vaultctl-sandbox" ./cmd/vaultctl-sandbox
go build -o "$work/servernoop" ./bench/servernoop

sbdir_args=()
if [[ -n "${VAULTCTL_SANDBOX_DIR:-}" ]]; then
  sbdir_args=(--dir "$VAULTCTL_SANDBOX_DIR")
fi
if ! env_out=$("$work/vaultctl-sandbox" env "${sbdir_args[@]}" 2>&1); then
  echo "no running sandbox: start one with \`vaultctl-sandbox up --vault=false --postgres=false\`" >&2
  echo "$env_out" >&2
  exit 1
fi
eval "$env_out"

cat >"$work/vaultctl.yaml" <<EOF
apiVersion: vaultctl.io/v1alpha1
kind: Platform
cluster:
  kubeconfig: ${KUBECONFIG}
vault:
  mode: in-cluster
  namespace: ${namespace}
  replicas: 3
  storage:
    storageClass: vaultctl-bench
  seal:
    type: awskms
    awskms:
      region: ${AWS_REGION:-us-east-1}
      kmsKeyId: alias/vault-unseal-key
      endpoint: ${AWS_ENDPOINT_URL_KMS}
audit:
  devices:
    - {path: file, type: file, options: {file_path: /vault/audit/audit.log}}
    - {path: file-2, type: file, options: {file_path: /vault/audit/audit-2.log}}
EOF

echo "sandbox: ${VAULTCTL_SANDBOX_DIR:-default}, namespace ${namespace}, ${runs} runs each"
cleanup=-cleanup
if [[ "${BENCH_KEEP:-}" == 1 ]]; then
  cleanup=-cleanup=false
fi
"$work/servernoop" -config "$work/vaultctl.yaml" -vaultctl "$work/vaultctl" -n "$runs" -hostpath-pvs "$work/pv" "$cleanup"
