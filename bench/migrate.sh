#!/usr/bin/env bash
# Times `vaultctl migrate namespace` on a namespace of N Secrets read by N/5 Deployments, against
# the two things it replaces or cannot beat, in one run on a sandbox of its own (external Vault
# mode, installed by vaultctl apply):
#   (a) vaultctl migrate namespace bench --yes -o json: backup, copy and read back of every
#       Secret, then per workload its backup, ServiceAccount, policy, role, proof and patch;
#   (b) the manual loop a team would script, on a second namespace built the same way: per
#       Secret, one after another, `kubectl get secret NAME -o json | jq ... | vault kv put PATH -`
#       (three processes per Secret, no backup, no read back, no workload touched);
#   (c) the raw floor: N KV v2 writes of the same data through the API, 16 at once (migrate's
#       Secret concurrency), with vaultctl's own Vault client;
#   (d) the rollout floor: the N/5 Deployments of the second namespace get a template change, 16
#       at once (migrate's workload concurrency), each followed until the controller observed it.
# (a) is split, from migrate's -v log, into the Secrets' phase (compare with (c)) and the
# workloads' phase (compare with (d)).
#
# The Deployments have replicas: 0. 200 pods with real agents would need ~8 GB of agent
# processes on a 2-core machine (bench/agent-pods.sh: 22 MiB own + shared pages per agent, two
# agents per pod, each started as a process), and what the bench measures is copy, policies,
# roles, proof and patch, not the rollout; with 0 replicas a rollout is done as soon as the
# Deployment controller observes the new template.
#
#   bench/migrate.sh                N=1000 (a multiple of 5)
#   N=200 bench/migrate.sh
#   BENCH_KEEP=1 bench/migrate.sh   leave the sandbox running and its directory in place
#   BENCH_VERBOSE=1 bench/migrate.sh  also keep migrate's -v log as /tmp/vaultctl-migrate-bench.log
#
# Needs the sandbox tools (make tools; VAULTCTL_TOOLS_DIR defaults to hack/tools/build.sh --dir),
# kubectl and jq. Serialize with other sandbox users: flock /tmp/e2e.lock bench/migrate.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-1000}
if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 5 || n % 5 != 0)); then
  echo "N must be a whole multiple of 5, at least 5 (N=$n)" >&2
  exit 2
fi
for tool in jq kubectl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (the manual loop runs it)" >&2; exit 2; }
done

. "$repo/bench/lib.sh"
bench_build
vaultbin=$VAULTCTL_TOOLS_DIR/vault
bench_sandbox migrate-bench --postgres=false
go build -o "$work/migratebench" ./bench/migratebench
mb=$work/migratebench

# The injector sees only namespaces with this label (as in the e2e estates).
label_key=bench.vaultctl.io/injector label_val=vault
cfg=$work/vaultctl.yaml
{ bench_vault_config; cat <<EOF
injector:
  namespaceLabels:
    $label_key: $label_val
kv:
  - path: secret
    description: migrate bench
audit:
  devices:
    - {path: file, type: file, options: {file_path: $work/audit/audit.log}}
    - {path: file-backup, type: file, options: {file_path: $work/audit/audit-backup.log}}
migration:
  defaults: {ttl: 1h, maxTTL: 4h}
EOF
} >"$cfg"
"$bin" config validate -c "$cfg" >"$work/validate.out" 2>&1 || { cat "$work/validate.out" >&2; exit 1; }

echo "installing the estate with vaultctl apply ..."
if ! "$bin" apply -c "$cfg" --non-interactive -o json >"$work/apply.json" 2>"$work/apply.err" ||
  [[ $(jq -r .ok "$work/apply.json") != true ]]; then
  cat "$work/apply.json" "$work/apply.err" >&2
  exit 1
fi

echo "building namespaces bench and bench-manual: $n Secrets, $((n / 5)) Deployments (replicas 0) each ..."
"$mb" seed -ns bench -n "$n" -label "$label_key=$label_val"
"$mb" seed -ns bench-manual -n "$n"
# A fresh Deployment costs the controller a ReplicaSet and status writes at its client's 20
# requests/s: wait for the 2N/5 of them here, or the first workloads' rollouts pay for the backlog.
echo "waiting for the Deployment controller to observe them ..."
"$mb" settle -ns bench
"$mb" settle -ns bench-manual
"$mb" token -vault-ns vault -out "$work/token"
VAULT_TOKEN=$(<"$work/token")
export VAULT_TOKEN

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# (a) migrate.
echo "(a) vaultctl migrate namespace bench --yes -o json ..."
# -v timestamps each step on stderr: the copy phase ends with the last "copied Secret" line.
t0=$EPOCHREALTIME
rc=0
"$bin" migrate namespace bench -c "$cfg" --yes -o json -v >"$work/migrate.json" 2>"$work/migrate.err" || rc=$?
a=$(secs "$t0" "$EPOCHREALTIME")
if ((rc != 0)); then
  echo "vaultctl migrate exited $rc:" >&2
  tail -c 4000 "$work/migrate.err" >&2
  jq -c '.report.workloads[]? | select(.state != "verified")' "$work/migrate.json" | head -5 >&2
  exit 1
fi
copied=$(jq '[.report.secrets[] | select(.error == null and .copy == "created")] | length' "$work/migrate.json")
verified=$(jq '[.report.workloads[] | select(.state == "verified")] | length' "$work/migrate.json")
if ((copied != n || verified != n / 5)); then
  echo "migrate was meant to copy $n Secrets and verify $((n / 5)) workloads, but copied $copied and verified $verified" >&2
  exit 1
fi
# Seconds of the -v log from its first line to the last line matching $1.
log_span() {
  awk -v pat="$1" 'function s(t, p) { split(t, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
    NR == 1 { first = s($1) } $0 ~ pat { last = s($1) } END { printf "%.3f", last - first }' "$work/migrate.err"
}
a_copy=$(log_span 'copied Secret')
a_all=$(log_span 'lock .*released')
a_work=$(awk -v x="$a_all" -v y="$a_copy" 'BEGIN { printf "%.3f", x - y }')
echo "  ${a}s: $copied Secrets copied (${a_copy}s from start), $verified workloads verified (${a_work}s after the copies)"

# (b) the manual loop, as a team scripts it: one Secret at a time, three processes each.
echo "(b) manual loop on bench-manual: kubectl get secret | jq | vault kv put, per Secret ..."
mapfile -t names < <(kubectl -n bench-manual get secrets --field-selector type=Opaque -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
if ((${#names[@]} != n)); then
  echo "bench-manual has ${#names[@]} Opaque Secrets, not $n" >&2
  exit 1
fi
t0=$EPOCHREALTIME
for s in "${names[@]}"; do
  kubectl -n bench-manual get secret "$s" -o json |
    jq '.data | map_values(@base64d)' |
    "$vaultbin" kv put -mount=secret "bench-manual/$s" - >/dev/null
done
b=$(secs "$t0" "$EPOCHREALTIME")
echo "  ${b}s"

# (c) the floor.
echo "(c) floor: $n KV v2 writes, 16 at once ..."
read -r c wrote < <("$mb" floor -ns bench-manual -mount secret -prefix bench-floor -concurrency 16)
if ((wrote != n)); then
  echo "the floor wrote $wrote entries, not $n" >&2
  exit 1
fi
echo "  ${c}s"

# (d) the controller's share of the workload phase.
echo "(d) rollout floor: patch each of bench-manual's $((n / 5)) Deployments, 16 at once, until the controller observed it ..."
read -r d rolled < <("$mb" rollfloor -ns bench-manual -concurrency 16)
if ((rolled != n / 5)); then
  echo "the rollout floor patched $rolled Deployments, not $((n / 5))" >&2
  exit 1
fi
echo "  ${d}s"

ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.1f", x / y }'; }
printf '\nmigrate bench: N=%d Secrets, %d Deployments (replicas 0, 5 Secrets each), external Vault on the sandbox; seconds\n' "$n" "$((n / 5))"
printf '%-70s %8s\n' "(a) vaultctl migrate namespace (whole process)" "$a"
printf '%-70s %8s\n' "    of which: backup, copy and read back of the $n Secrets" "$a_copy"
printf '%-70s %8s\n' "    of which: $((n / 5)) workloads: backup, access, proof, patch, rollout (16 at once)" "$a_work"
printf '%-70s %8s\n' "(b) manual loop: kubectl get | jq | vault kv put, per Secret" "$b"
printf '%-70s %8s\n' "(c) floor: $n KV v2 writes, 16 at once" "$c"
printf '%-70s %8s\n' "(d) rollout floor: $((n / 5)) template patches observed by the controller" "$d"
printf 'manual / migrate = %sx (goal >= 20x); migrate / floor = %sx (goal <= 2x)\n' "$(ratio "$b" "$a")" "$(ratio "$a" "$c")"
printf 'copy phase / floor = %sx; workload phase / rollout floor = %sx\n' "$(ratio "$a_copy" "$c")" "$(ratio "$a_work" "$d")"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ "${BENCH_VERBOSE:-}" == 1 ]]; then
  cp "$work/migrate.err" "${TMPDIR:-/tmp}/vaultctl-migrate-bench.log"
  echo "migrate's -v log: ${TMPDIR:-/tmp}/vaultctl-migrate-bench.log"
fi
