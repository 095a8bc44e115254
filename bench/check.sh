#!/usr/bin/env bash
# Benchmarks `vaultctl check` against the CI script from the origin article and against the floor
# (cat of every file), on a generated tree of 10,000 manifests (a Deployment and a Service per
# file, about 7 MB). The article's script reads only k8s/production/*.yaml, so that is where the
# tree goes. Every 100th Deployment lacks injection, so both tools have something to report.
#
#   bench/check.sh                 10,000 files
#   BENCH_FILES=2000 bench/check.sh
#   BENCH_KEEP=1 bench/check.sh    keep the temporary directory
#
# Goals (issue 7): at least 30x faster than the grep script, within 5x of the cat floor.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
files=${BENCH_FILES:-10000}
work=$(mktemp -d "${TMPDIR:-/tmp}/vaultctl-bench.XXXXXX")
cleanup() {
  if [[ "${BENCH_KEEP:-}" == 1 ]]; then
    echo "kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

# The same manifest as benchManifest in check/bench_test.go. Built with bash builtins only: a
# process per file would make generating the tree slower than the benchmark.
manifest() {
  local n ann=""
  printf -v n '%05d' "$1"
  if (($1 % 100 != 99)); then
    ann="      annotations:
        vault.hashicorp.com/agent-inject: \"true\"
        vault.hashicorp.com/role: \"app\"
        vault.hashicorp.com/agent-inject-secret-db: \"secret/data/production/app-$n\"
"
  fi
  printf '%s' "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-$n
  namespace: production
  labels:
    app: app-$n
spec:
  replicas: 2
  selector:
    matchLabels:
      app: app-$n
  template:
    metadata:
      labels:
        app: app-$n
$ann    spec:
      serviceAccountName: app
      containers:
        - name: app
          image: registry.example.com/app:1.4.2
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: app-$n
  namespace: production
spec:
  selector:
    app: app-$n
  ports:
    - port: 80
      targetPort: 8080
"
}

echo "generating $files files in $work/k8s/production ..."
mkdir -p "$work/k8s/production"
for ((i = 0; i < files; i++)); do
  printf -v name 'app-%05d.yaml' "$i"
  manifest "$i" >"$work/k8s/production/$name"
done
bytes=$(cat "$work"/k8s/production/*.yaml | wc -c)
echo "tree: $files files, $(div "$bytes" 1000000) MB"

echo "building vaultctl ..."
(cd "$repo" && go build -o "$work/vaultctl" ./cmd/vaultctl)

# The origin article's script, verbatim (its indentation was lost in the article; bash does not
# need it). It is the baseline being measured, so it is not improved here.
cat >"$work/check-vault-annotations.sh" <<'SCRIPT'
#!/bin/bash
# scripts/check-vault-annotations.sh
set -euo pipefail
FAILURES=0
for file in k8s/production/*.yaml; do
if grep -q "kind: Deployment" "$file"; then
if ! grep -q "vault.hashicorp.com/agent-inject" "$file"; then
echo "FAIL: $file — missing Vault injection annotations"
FAILURES=$((FAILURES + 1))
fi
fi
if grep -q "kind: Secret" "$file"; then
echo "FAIL: $file — raw Kubernetes Secret detected. Use Vault instead."
FAILURES=$((FAILURES + 1))
fi
done
if [ "$FAILURES" -gt 0 ]; then
echo "$FAILURES policy violations found."
exit 1
fi
echo "All checks passed."
SCRIPT
chmod +x "$work/check-vault-annotations.sh"

cd "$work"
# Warm the page cache so that every contender reads from memory.
cat k8s/production/*.yaml >/dev/null

# best CMD...: the fastest of three runs, in seconds. Exit status 1 (findings) is expected.
best() {
  local b="" t0 t1 d
  for _ in 1 2 3; do
    t0=$(now)
    "$@" >/dev/null 2>&1 || true
    t1=$(now)
    d=$(sub "$t1" "$t0")
    if [[ -z "$b" ]] || awk -v a="$d" -v b="$b" 'BEGIN { exit !(a < b) }'; then b=$d; fi
  done
  echo "$b"
}

catall() { cat k8s/production/*.yaml >/dev/null; }

echo "timing cat (floor) ..."
t_cat=$(best catall)
echo "timing vaultctl check ..."
t_vc=$(best ./vaultctl check k8s/)
echo "timing the grep script (one run; about a minute) ..."
t0=$(now)
./check-vault-annotations.sh >grep.out 2>&1 || true
t_grep=$(sub "$(now)" "$t0")

# Both must have seen the same problems, or the race is meaningless.
vc_findings=$(./vaultctl check -o json k8s/ | grep -c '"rule": "missing-injection"' || true)
grep_findings=$(grep -c '^FAIL:' grep.out || true)

printf '\n%-28s %9s   %s\n' "" "seconds" "findings"
printf '%-28s %9s   %s\n' "cat of every file (floor)" "$t_cat" "-"
printf '%-28s %9s   %s\n' "vaultctl check" "$t_vc" "$vc_findings"
printf '%-28s %9s   %s\n' "grep script (article)" "$t_grep" "$grep_findings"
echo
echo "grep script / vaultctl check = $(div "$t_grep" "$t_vc")x   (goal: at least 30x)"
echo "vaultctl check / cat         = $(div "$t_vc" "$t_cat")x   (goal: at most 5x)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
