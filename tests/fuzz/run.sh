#!/usr/bin/env bash
# Runs every libFuzzer target for a fixed time and fails on any finding (crash, sanitizer report,
# leak, a failed property, a hang beyond -timeout, memory beyond -rss_limit_mb / a malloc beyond it).
#   tests/fuzz/run.sh [seconds per target, default 30]
# Build first: cmake --workflow --preset fuzz. Environment (all optional):
#   SINGLEQUANT_FUZZ_BUILD    build directory (default build/fuzz)
#   SINGLEQUANT_FUZZ_TARGETS  space-separated subset of the targets below
#   SINGLEQUANT_FUZZ_JOBS     targets run at once (default 2)
#   SINGLEQUANT_FUZZ_OUT      scratch directory for corpora, logs and crash files (default: a new
#                             temporary directory, removed after a clean run, kept after a finding)
#   SINGLEQUANT_MODELS_DIR    real llama2.c files (default ../shared/models); when present, its
#                             tokenizer, reference JSON and GGUF files join the seeds
# The seeds (build/fuzz/tests/fuzz/corpus/<target>) are copied; the source tree is never written.
set -euo pipefail
seconds="${1:-30}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
build="${SINGLEQUANT_FUZZ_BUILD:-$src/build/fuzz}"
bin="$build/tests/fuzz"
jobs="${SINGLEQUANT_FUZZ_JOBS:-2}"
models="${SINGLEQUANT_MODELS_DIR:-$src/../shared/models}"
# target:max_len (a little above the largest real input each parser takes here)
all_targets="transform:16384 q4_0:4096 gptq:4096 llama2c_model:8192 llama2c_tokenizer:8192 llama2c_json:16384 gguf:16384 qmodel:16384"
selected="${SINGLEQUANT_FUZZ_TARGETS:-}"

if [ -n "${SINGLEQUANT_FUZZ_OUT:-}" ]; then
  out="$SINGLEQUANT_FUZZ_OUT"
  mkdir -p "$out"
  keep=1
else
  out="$(mktemp -d "${TMPDIR:-/tmp}/singlequant-fuzz.XXXXXX")"
  keep=0
fi

run_one() {  # target max_len
  local t="$1" len="$2" dir="$out/$1"
  mkdir -p "$dir/corpus"
  cp "$bin/corpus/$t/"* "$dir/corpus/"
  if [ -d "$models" ]; then
    case "$t" in
      llama2c_tokenizer) cp "$models"/tok*.bin "$dir/corpus/" 2>/dev/null || true ;;
      llama2c_json) cp "$models"/*.json "$dir/corpus/" 2>/dev/null || true ;;
      gguf) cp "$models"/*.gguf "$dir/corpus/" 2>/dev/null || true ;;
    esac
  fi
  set +e
  "$bin/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$len" \
    -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1
  echo $? >"$dir/rc"
  set -e
}

started=0
for entry in $all_targets; do
  t="${entry%%:*}"
  len="${entry##*:}"
  if [ -n "$selected" ] && [[ " $selected " != *" $t "* ]]; then continue; fi
  if [ ! -x "$bin/fuzz_$t" ] || [ ! -d "$bin/corpus/$t" ]; then
    echo "run.sh: $bin/fuzz_$t or its seeds are missing; build with: cmake --workflow --preset fuzz" >&2
    exit 2
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" "$len" &
  started=$((started + 1))
done
wait
if [ "$started" -eq 0 ]; then
  echo "run.sh: no target selected (SINGLEQUANT_FUZZ_TARGETS='$selected')" >&2
  exit 2
fi

failed=0
echo "fuzzing, ${seconds} s per target ($out):"
for entry in $all_targets; do
  t="${entry%%:*}"
  dir="$out/$t"
  [ -f "$dir/rc" ] || continue
  rc="$(cat "$dir/rc")"
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)"
  corpus="$(find "$dir/corpus" -type f | wc -l)"
  printf '  %-18s %10s executions, corpus %4s files, exit %s\n' "$t" "${executions:-?}" "$corpus" "$rc"
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "--- $t: finding (last lines of $dir/log):"
    grep -v '^#[0-9]' "$dir/log" | tail -n 40
    for artifact in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*; do
      [ -e "$artifact" ] || continue
      echo "--- reproduce: $bin/fuzz_$t $artifact"
    done
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "run.sh: FINDINGS; corpora, logs and inputs kept in $out" >&2
  exit 1
fi
if [ "$keep" -eq 0 ]; then rm -rf "$out"; fi
echo "run.sh: no findings"
