#!/usr/bin/env bash
# The main job on a local estate: start the sandbox, write a config for it, then run
# vaultctl plan and apply (twice, to show that the second run changes nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/vaultctl
sandbox=bin/vaultctl-sandbox
export VAULTCTL_TOOLS_DIR=${VAULTCTL_TOOLS_DIR:-$(hack/tools/build.sh --dir)}
state=${VAULTCTL_SANDBOX_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/vaultctl/sandbox}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "starting the sandbox in $state"
"$sandbox" up --dir "$state"
eval "$("$sandbox" env --dir "$state")"

cfg=$state/vaultctl.yaml
mkdir -p "$state/audit"
step "writing $cfg for the sandbox (external Vault, KMS emulator)"
sed -e "s|^  mode: in-cluster.*|  mode: external|" \
    -e "s|^  address: \"\".*|  address: $VAULT_ADDR|" \
    -e "s|^    caCert: \"\".*|    caCert: $VAULT_CACERT|" \
    -e "s|^      region: us-east-1.*|      region: $AWS_REGION|" \
    -e "s|^      endpoint: \"\".*|      endpoint: $AWS_ENDPOINT_URL_KMS|" \
    -e "s|^  kubeconfig: \"\".*|  kubeconfig: $KUBECONFIG|" \
    -e "s|file_path: /vault/audit/|file_path: $state/audit/|" \
    config.example.yaml > "$cfg"
"$bin" config validate -c "$cfg"

step "vaultctl plan"
rc=0; "$bin" plan -c "$cfg" || rc=$?
[[ $rc == 0 || $rc == 3 ]] || exit $rc

step "vaultctl apply"
"$bin" apply -c "$cfg"

step "vaultctl apply (again: nothing to do)"
"$bin" apply -c "$cfg"

step "vaultctl status"
"$bin" status -c "$cfg"

printf '\nThe sandbox keeps running. Use it with:  eval "$(%s env)"\nStop it with:  %s down\n' "$sandbox" "$sandbox"
