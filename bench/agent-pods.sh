#!/usr/bin/env bash
# Starts pods with Vault Agents on a sandbox of its own (the e2e TestMain starts one) and prints
# how many per second reach Running and Ready (the sandbox webhook injected them, the runner ran
# vault-agent-init to completion against the sandbox's Vault and started the vault-agent
# sidecar), and the resident memory of one sidecar agent: all of it, and the part that is its
# own (the vault binary's pages are shared by every agent on the machine).
#
#   bench/agent-pods.sh                   20 pods
#   BENCH_AGENT_PODS=50 bench/agent-pods.sh
#
# Needs the sandbox tools (make tools; VAULTCTL_TOOLS_DIR defaults to hack/tools/build.sh --dir)
# and root (the runner makes mount namespaces).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export VAULTCTL_TOOLS_DIR=${VAULTCTL_TOOLS_DIR:-$(hack/tools/build.sh --dir)}
export BENCH_AGENT_PODS=${BENCH_AGENT_PODS:-20}
go test -count=1 -timeout 20m -run '^$' -bench '^BenchmarkAgentPods$' -benchtime 1x ./e2e/
