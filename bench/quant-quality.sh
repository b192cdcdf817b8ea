#!/bin/sh
# bench/quant-quality.sh - how much each quantization mix moves a model:
# perplexity, KL divergence from the F16 model and top-1 agreement, for the
# `small` and `bench` synthetic presets.  For reports; not run in CI (the
# bench model takes minutes per mix).
#
#   bench/quant-quality.sh [TEXT.txt]          (default text: README.md)
#
# Environment (all optional):
#   SMOE      the smoe binary (default build/smoe)
#   WORK      where models and results go (default /tmp/smoe-quant-quality)
#   PRESETS   synthetic presets to measure (default "small bench")
#   MIXES     quantizations (default: every mix, and q4_0 as a single type)
#   CTX_small, CTX_bench   window length per preset (default 128 and 512)
#   CHUNKS    windows per run, at most (default 16)
#   THREADS   threads (default: all cores)
#
# Prints one table per preset (markdown) and leaves the JSON lines of every
# run in $WORK/results.jsonl.  The models are made once and reused.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SMOE=${SMOE:-$ROOT/build/smoe}
WORK=${WORK:-/tmp/smoe-quant-quality}
PRESETS=${PRESETS:-small bench}
MIXES=${MIXES:-q8_0 q6_k q5_k_m q5_k_s q4_k_m q4_k_s q4_0 q3_k_m q3_k_s q2_k}
CHUNKS=${CHUNKS:-16}
TEXT=${1:-$ROOT/README.md}
THREAD_ARGS=""
[ -n "${THREADS:-}" ] && THREAD_ARGS="-t $THREADS"

[ -x "$SMOE" ] || { echo "quant-quality.sh: $SMOE not found (run make)" >&2; exit 1; }
[ -r "$TEXT" ] || { echo "quant-quality.sh: cannot read $TEXT" >&2; exit 1; }
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: > "$RESULTS"

for preset in $PRESETS; do
    eval "ctx=\${CTX_$preset:-}"
    if [ -z "$ctx" ]; then
        if [ "$preset" = bench ]; then ctx=512; else ctx=128; fi
    fi
    base=$WORK/$preset-f16.gguf
    [ -f "$base" ] || "$SMOE" synth --preset "$preset" --type f16 -o "$base" >&2
    for mix in $MIXES; do
        q=$WORK/$preset-$mix.gguf
        [ -f "$q" ] || "$SMOE" quantize "$base" "$q" "$mix" >&2
        echo "quant-quality.sh: $preset $mix (ctx $ctx, at most $CHUNKS windows)" >&2
        # shellcheck disable=SC2086
        "$SMOE" perplexity -m "$q" --kl-base "$base" -f "$TEXT" --ctx "$ctx" --chunks "$CHUNKS" --json \
            $THREAD_ARGS | sed "s/^{/{\"preset\":\"$preset\",\"mix\":\"$mix\",\"file_bytes\":$(wc -c < "$q"),/" >> "$RESULTS"
    done
done

python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for preset in dict.fromkeys(r["preset"] for r in rows):
    rs = [r for r in rows if r["preset"] == preset]
    r0 = rs[0]
    print(f"\n{preset}: ctx {r0['ctx']}, {r0['windows']} windows, {r0['scored']} scored tokens; "
          f"F16 perplexity {r0['base_perplexity']:.4f}\n")
    print("| mix | file MiB | perplexity | KL vs F16 (nats/token) | top-1 agreement |")
    print("|---|---:|---:|---:|---:|")
    for r in rs:
        print(f"| {r['mix']} | {r['file_bytes'] / 2**20:.1f} | {r['perplexity']:.4f} | "
              f"{r['kl_mean']:.3e} ± {r['kl_se']:.1e} | {100 * r['top1_agreement']:.2f}% |")
EOF
