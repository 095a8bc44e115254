#!/usr/bin/env bash
# Times `vaultctl apply` as the number of policies and roles grows, on a sandbox of its own
# (external Vault mode), and prints three figures:
#   (a) the no-op apply with 1 policy and 1 role (the baseline: every phase observed, nothing written),
#   (b) the first apply of N policies and N roles onto that install (creates N-1 of each),
#   (c) the no-op apply with N of each.
# (a) and (c) are medians of BENCH_RUNS runs. (b) is a separate apply after the initial install,
# because the first apply on the sandbox's uninitialised Vault also initialises it, bootstraps
# auth and installs the injector; its config is a superset of the baseline's, so only the
# policies and roles phases have work to do (checked, or the figure is refused).
#
#   bench/apply-scale.sh                N=1000
#   N=300 bench/apply-scale.sh
#   BENCH_RUNS=7 bench/apply-scale.sh   no-op runs per median (default 5)
#   BENCH_KEEP=1 bench/apply-scale.sh   leave the sandbox running and its directory in place
#
# Needs the sandbox tools (make tools; VAULTCTL_TOOLS_DIR defaults to hack/tools/build.sh --dir)
# and jq. The sandbox runs in a temporary directory and is torn down on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-1000}
runs=${BENCH_RUNS:-5}
if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 2)) || ! [[ "$runs" =~ ^[0-9]+$ ]] || ((runs < 1)); then
  echo "N must be a whole number of at least 2 and BENCH_RUNS of at least 1 (N=$n BENCH_RUNS=$runs)" >&2
  exit 2
fi
command -v jq >/dev/null || { echo "jq is needed to read vaultctl apply -o json" >&2; exit 2; }

. "$repo/bench/lib.sh"
bench_build
bench_sandbox apply-scale --postgres=false

# config COUNT FILE: the sandbox config with COUNT policies (read on one KV path each under the
# configured mount) and COUNT roles, role i binding ServiceAccount app-i in namespace bench to
# policy i. Object 1 is the same in every config, so the N config extends the baseline's.
config() {
  local count=$1 i id
  {
    bench_vault_config
    cat <<EOF
kv:
  - path: secret
    description: apply-scale bench
audit:
  devices:
    - {path: file, type: file, options: {file_path: $work/audit/audit.log}}
    - {path: file-backup, type: file, options: {file_path: $work/audit/audit-backup.log}}
policies:
EOF
    # Bash builtins only: a process per object would cost more than the apply at N=1000.
    for ((i = 1; i <= count; i++)); do
      printf -v id '%04d' "$i"
      printf '  - name: bench-%s\n    rules:\n      - {path: secret/bench/app-%s/config, capabilities: [read]}\n' "$id" "$id"
    done
    echo "roles:"
    for ((i = 1; i <= count; i++)); do
      printf -v id '%04d' "$i"
      printf '  - name: bench-%s\n    serviceAccounts: [app-%s]\n    namespaces: [bench]\n    policies: [bench-%s]\n    ttl: 1h\n    maxTTL: 4h\n' "$id" "$id" "$id"
    done
  } >"$2"
  if ! "$bin" config validate -c "$2" >"$work/validate.out" 2>&1; then
    cat "$work/validate.out" >&2
    exit 1
  fi
}

# apply CONFIG WANT: runs apply -o json, leaves its output in $work/last.json and its wall time in
# seconds in $took. WANT says what must have happened: "any", "noop" (every phase up to date or
# skipped) or a list such as "policies,roles" (those changed, every other phase a no-op).
took=
apply() {
  local t0 rc=0
  t0=$EPOCHREALTIME
  "$bin" apply -c "$1" --non-interactive -o json >"$work/last.json" 2>"$work/last.err" || rc=$?
  took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  if ((rc != 0)) || [[ $(jq -r .ok "$work/last.json") != true ]]; then
    echo "vaultctl apply -c $1 failed (exit $rc):" >&2
    cat "$work/last.json" "$work/last.err" >&2
    exit 1
  fi
  local wrong
  case $2 in
  any) wrong= ;;
  *) wrong=$(jq -r --arg want "$2" '($want | split(",")) as $w | .phases[]
        | select((.phase | IN($w[])) as $in
            | if $in then .status != "changed" else .status | IN("up to date", "skipped") | not end)
        | "\(.phase): \(.status)"' "$work/last.json") ;;
  esac
  if [[ -n "$wrong" ]]; then
    echo "vaultctl apply -c $1 was meant to be $2, but:" >&2
    echo "$wrong" >&2
    exit 1
  fi
}

# phase_s NAME: seconds the last apply spent in phase NAME.
phase_s() { jq -r --arg p "$1" '.phases[] | select(.phase == $p) | .durationNs / 1e9 | . * 1000 | round / 1000' "$work/last.json"; }

# noop_median CONFIG: sets med to the run with the median wall time of $runs no-op applies, as
# "wall policies roles" seconds. Not in a subshell, so that a failed apply stops the script.
med=
noop_median() {
  local i rows=()
  for ((i = 0; i < runs; i++)); do
    apply "$1" noop
    rows+=("$took $(phase_s policies) $(phase_s roles)")
  done
  med=$(printf '%s\n' "${rows[@]}" | sort -n -k1,1 | sed -n "$((runs / 2 + 1))p")
}

config 1 "$work/one.yaml"
config "$n" "$work/n.yaml"

echo "installing with 1 policy and 1 role (initialises Vault) ..."
apply "$work/one.yaml" any
echo "no-op apply with 1 + 1, $runs runs ..."
noop_median "$work/one.yaml"
read -r a_wall a_pol a_role <<<"$med"

echo "first apply with $n policies and $n roles ..."
apply "$work/n.yaml" policies,roles
b_wall=$took b_pol=$(phase_s policies) b_role=$(phase_s roles)

echo "  took ${b_wall}s (policies ${b_pol}s, roles ${b_role}s)"

# 2N Raft writes in a few seconds leave followers behind on a 2-core machine: autopilot calls
# them unhealthy until they catch up, and the raft phase (rightly) waits for that. Let the
# cluster settle before timing no-ops, so (c) measures policies and roles, not catch-up.
echo "waiting for Raft to settle ..."
for ((i = 0; ; i++)); do
  "$bin" plan -c "$work/n.yaml" --only raft >/dev/null 2>&1 && break
  if ((i >= 120)); then
    echo "Raft did not settle within 2 minutes after the first apply" >&2
    exit 1
  fi
  sleep 1
done
echo "no-op apply with $n + $n, $runs runs ..."
noop_median "$work/n.yaml"
read -r c_wall c_pol c_role <<<"$med"

printf '\napply-scale: N=%d, external Vault on the sandbox; seconds (wall = whole vaultctl process)\n' "$n"
printf '%-52s %8s %9s %7s\n' "" "wall" "policies" "roles"
printf '%-52s %8s %9s %7s\n' "(a) no-op apply, 1 policy + 1 role (median)" "$a_wall" "$a_pol" "$a_role"
printf '%-52s %8s %9s %7s\n' "(b) first apply, $n + $n (creates $((n - 1)) of each)" "$b_wall" "$b_pol" "$b_role"
printf '%-52s %8s %9s %7s\n' "(c) no-op apply, $n + $n (median)" "$c_wall" "$c_pol" "$c_role"
echo "runs per median: $runs; machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
