#!/usr/bin/env bash
# Benchmarks `vaultctl audit analyze` against jq computing the same failed-login counts and
# against the floor (cat of the file), on a generated audit log shaped like Vault 1.21's file
# device output (bench/auditgen: logins, failed logins, KV reads, lists, denials, renewals).
# Every tool reads the same file from the page cache, one after another, on one core
# (taskset -c 0 when available; vaultctl with GOMAXPROCS=1).
#
#   bench/audit.sh                          1 GiB
#   BENCH_BYTES=200000000 bench/audit.sh
#   BENCH_KEEP=1 bench/audit.sh             keep the temporary directory
#
# Goals (issue 13): at least 150 MB/s on one core, at least 5x faster than jq, same counts.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bytes=${BENCH_BYTES:-1073741824}
work=$(mktemp -d "${TMPDIR:-/tmp}/vaultctl-audit-bench.XXXXXX")
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
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
one=()
if command -v taskset >/dev/null; then one=(taskset -c 0); fi

if ! command -v jq >/dev/null; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    apt-get install -y -qq jq >/dev/null 2>&1 || true
  fi
fi

(cd "$repo" && go build -o "$work/vaultctl" ./cmd/vaultctl && go build -o "$work/auditgen" ./bench/auditgen)
log="$work/audit.log"
"$work/auditgen" -size "$bytes" >"$log"
size=$(stat -c %s "$log")
lines=$(wc -l <"$log")
echo "log: $size bytes, $lines lines ($log)"
cat "$log" >/dev/null # into the page cache

t0=$(now)
"${one[@]}" cat "$log" >/dev/null
t1=$(now)
cat_s=$(sub "$t1" "$t0")

t0=$(now)
GOMAXPROCS=1 "${one[@]}" "$work/vaultctl" audit analyze --top 100000 -o json "$log" >"$work/vaultctl.json" || [[ $? == 1 ]]
t1=$(now)
vc_s=$(sub "$t1" "$t0")
# Memory stays flat as the log grows: peak RSS on a tenth of the log and on all of it.
rss() {
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -o "$work/rss" -f %M "$work/vaultctl" "$@" >/dev/null 2>&1 || true
    tail -1 "$work/rss"
  else
    echo "?"
  fi
}
head -c $((size / 10)) "$log" >"$work/tenth.log"
rss_tenth=$(rss audit analyze -o json "$work/tenth.log")
rss_all=$(rss audit analyze -o json "$log")
rss_base=$(rss version)
rm -f "$work/tenth.log"
# Failed logins per mount, role and error (vaultctl also splits them by ServiceAccount).
jq -r '[.report.authFailures[] | {k: "\(.mount)\t\(.role)\t\(.error)", c: .count}] | group_by(.k)[] | "\(map(.c) | add)\t\(.[0].k)"' \
  "$work/vaultctl.json" | sort >"$work/vaultctl.counts"

printf '%-22s %8s %9s\n' tool seconds MB/s
printf '%-22s %8s %9s\n' "cat (floor)" "$cat_s" "$(rate "$size" "$cat_s")"
printf '%-22s %8s %9s\n' "vaultctl audit analyze" "$vc_s" "$(rate "$size" "$vc_s")"

echo "vaultctl peak RSS: ${rss_tenth} KiB on $((size / 10)) bytes, ${rss_all} KiB on $size bytes (${rss_base} KiB for vaultctl version)"

if command -v jq >/dev/null; then
  # The same rule as auditlog: a response to auth/<mount>/login[/...] with an error, or a
  # 4xx whose text Vault HMACs into response.data.error; an HMAC'd role shows as hmac:<12 hex>.
  t0=$(now)
  "${one[@]}" jq -n -r '
    reduce (inputs
      | select(.type == "response"
          and (.request.path | startswith("auth/") and (endswith("/login") or contains("/login/")))
          and (((.error // "") != "") or (.response.data.error != null))))
    as $e ({};
      .[ ($e.request.mount_point // "") + "\t"
         + ($e.request.data.role // "" | if startswith("hmac-sha256:") then "hmac:" + .[12:24] else . end) + "\t"
         + (if ($e.error // "") != "" then $e.error else "(a 4xx answer; Vault HMACs its text in response.data.error)" end)
       ] += 1)
    | to_entries[] | "\(.value)\t\(.key)"' "$log" | sort >"$work/jq.counts"
  t1=$(now)
  jq_s=$(sub "$t1" "$t0")
  printf '%-22s %8s %9s\n' "jq (failed logins)" "$jq_s" "$(rate "$size" "$jq_s")"
  echo "vaultctl: $(div "$jq_s" "$vc_s")x faster than jq, $(div "$vc_s" "$cat_s")x the cat floor"
  if diff -u "$work/jq.counts" "$work/vaultctl.counts" >"$work/counts.diff"; then
    echo "failed-login counts: identical ($(wc -l <"$work/jq.counts") groups, $(awk '{s += $1} END {print s}' "$work/jq.counts") failures)"
  else
    echo "failed-login counts DIFFER:"
    head -40 "$work/counts.diff"
    exit 1
  fi
else
  echo "jq: not installed and could not be installed (apt-get install jq); the jq column is skipped"
fi
