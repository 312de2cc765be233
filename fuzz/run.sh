#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 600) each, two at a time (one per
# core), with libFuzzer's memory limit at 512 MB. Seeds each corpus from the
# sample export in examples/ so the fuzzer starts from real export bytes.
# Prints one line per target: executions, corpus size, crashes/timeouts/OOMs.
#
#   cargo install cargo-fuzz --locked   # once
#   fuzz/run.sh 600
set -uo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
ex=../examples/orders/AWSDynamoDB/01717213320657-84902ace

lines() { # the first lines of each data file, as plain text seeds
  for f in "$ex"/data/*.json.gz; do gzip -dc "$f" | head -c 20000 > "corpus/$1/$(basename "$f" .json.gz).jsonl"; done
}
for t in decode_inferred decode_fixed infer; do mkdir -p "corpus/$t"; lines "$t"; done
mkdir -p corpus/decode_ion
for f in ../examples/orders-ion/AWSDynamoDB/01717213320657-84902ace/data/*.ion.gz; do
  gzip -dc "$f" | head -c 20000 > "corpus/decode_ion/$(basename "$f" .ion.gz).ion"
done
mkdir -p corpus/gzip_lines corpus/manifest_summary corpus/manifest_files corpus/schema_file corpus/partition_escape
cp "$ex"/data/*.json.gz corpus/gzip_lines/
cp "$ex"/manifest-summary.json corpus/manifest_summary/
cp "$ex"/manifest-files.json corpus/manifest_files/
cp ../schemas/orders.json corpus/schema_file/
printf '2024-01-01T10:00:00Z' > corpus/partition_escape/ts
# ASan keeps freed memory in a quarantine (256 MB by default): with a grown corpus that
# alone can cross the 512 MB limit (seen on decode_ion, whose inputs alone run in ~20 ms).
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=64}"
cargo +nightly fuzz build -O >/dev/null 2>&1 || { echo "fuzz build failed: cargo +nightly fuzz build -O"; exit 1; }
run() {
  local t=$1
  cargo +nightly fuzz run -O "$t" -- -rss_limit_mb=512 -timeout=10 -max_total_time="$secs" -print_final_stats=1 \
    > "artifacts-$t.log" 2>&1
  local rc=$?
  local execs; execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "artifacts-$t.log" | grep -o '[0-9]*$')
  local found; found=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "$t: exit $rc, ${execs:-?} executions in ${secs} s, corpus $(ls "corpus/$t" | wc -l), artifacts (crash/timeout/oom) $found"
}
targets=(decode_inferred decode_fixed decode_ion infer gzip_lines manifest_summary manifest_files schema_file partition_escape)
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" &
  [ -n "${targets[i+1]:-}" ] && run "${targets[i+1]}" &
  wait
done
