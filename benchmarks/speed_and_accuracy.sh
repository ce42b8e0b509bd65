#!/usr/bin/env bash
# The README's benchmark tables: every variant of a bundle against the Keras originals, on the
# held-out test split of the reference runs (1,537 HAM10000 images), at 1 and 2 threads.
# Writes benchmarks/results/benchmark/<name>/{benchmark.json,benchmark.md,*.png}.
#   usage: benchmarks/speed_and_accuracy.sh [BUNDLE] [NAME] [DATA]
#   BUNDLE defaults to the shipped default bundle; pass `bundle` (from `dermedge export --out bundle`)
#   for every variant including pruned-int8, qat-int8 and the Core ML sizes.
# Run it on a quiet machine: latency percentiles absorb noise, but not a second busy process.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-edge_runtime/default_bundle}
NAME=${2:-shipped}
DATA=${3:-../shared/data/ham10000}
TTA=${TTA:-int8}  # variants also run with test-time augmentation
OUT=benchmarks/results/benchmark/$NAME
mkdir -p "$OUT"
dermedge benchmark --bundle "$BUNDLE" --images "$DATA/images" --masks "$DATA/masks" \
    --labels runs/classify/split.csv --split test --threads 1,2 --runs 300 --warmup 30 --tta "$TTA" \
    --json "$OUT/benchmark.json" --markdown "$OUT/benchmark.md" --plots "$OUT"
