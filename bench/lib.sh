# What the benches that start a sandbox of their own share. Source it from a bench script after
# `set -euo pipefail`, with $repo set to the repository root:
#   . "$repo/bench/lib.sh"
#   bench_build                  # VAULTCTL_TOOLS_DIR, bin/vaultctl; sets $bin and ${sandbox[@]}
#   bench_sandbox NAME [FLAGS]   # $work, a sandbox in $work/sandbox ($sbdir), its env loaded;
#                                # stopped and removed on exit unless BENCH_KEEP=1
#   bench_vault_config           # prints the head of a config for the sandbox's external Vault

bench_build() {
  cd "$repo"
  export VAULTCTL_TOOLS_DIR=${VAULTCTL_TOOLS_DIR:-$(hack/tools/build.sh --dir)}
  echo "building bin/vaultctl ..."
  make -s build
  bin=$repo/bin/vaultctl
  # The sandbox command is a binary of its own with the same subcommands and flags.
  if [[ -x $repo/bin/vaultctl-sandbox ]]; then
    sandbox=("$repo/bin/vaultctl-sandbox")
  else
    sandbox=("$bin" sandbox)
  fi
}

bench_cleanup() {
  if [[ "${BENCH_KEEP:-}" == 1 ]]; then
    echo "kept the sandbox: ${sandbox[*]} down --dir $sbdir --purge; rm -rf $work"
    return
  fi
  "${sandbox[@]}" down --dir "$sbdir" --purge >/dev/null 2>&1 ||
    echo "warning: sandbox down failed; stop it with: ${sandbox[*]} down --dir $sbdir --purge" >&2
  rm -rf "$work"
}

bench_sandbox() {
  local name=$1
  shift
  work=$(mktemp -d "${TMPDIR:-/tmp}/vaultctl-$name.XXXXXX")
  sbdir=$work/sandbox
  trap bench_cleanup EXIT
  # Turn signals into an exit so that the EXIT trap stops the sandbox.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo "starting a sandbox in $sbdir (${sandbox[*]}) ..."
  "${sandbox[@]}" up --dir "$sbdir" "$@" >"$work/sandbox-up.log" 2>&1 ||
    { cat "$work/sandbox-up.log" >&2; exit 1; }
  eval "$("${sandbox[@]}" env --dir "$sbdir")"
  mkdir -p "$work/audit"
}

# bench_vault_config prints the part of a vaultctl config every bench shares: the sandbox's
# cluster, its external Vault and KMS (from the env bench_sandbox loaded). Sections follow.
bench_vault_config() {
  cat <<EOF
apiVersion: vaultctl.io/v1alpha1
kind: Platform
cluster:
  kubeconfig: $KUBECONFIG
vault:
  mode: external
  address: $VAULT_ADDR
  tls:
    caCert: $VAULT_CACERT
  seal:
    awskms:
      region: $AWS_REGION
      kmsKeyId: alias/vault-unseal-key
      endpoint: $AWS_ENDPOINT_URL_KMS
  init:
    recoveryShares: 3
    recoveryThreshold: 2
EOF
}
