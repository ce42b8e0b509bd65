#!/usr/bin/env bash
# Accuracy of the deployed two-stage pipeline (U-Net crops, not ground-truth crops) for every
# TFLite variant of a bundle, on the held-out test split of the reference runs, through
# `dermedge evaluate`. Writes benchmarks/results/deployed/<variant>_{segment,classify}.json
# (+ plots) and prints the Markdown table the README shows.
#   usage: benchmarks/deployed_accuracy.sh [BUNDLE] [DATA]
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-edge_runtime/default_bundle}
DATA=${2:-../shared/data/ham10000}
OUT=benchmarks/results/deployed
mkdir -p "$OUT"
for variant in $(dermedge info --bundle "$BUNDLE" --json | python -c \
        'import json,sys; m=json.load(sys.stdin); print(" ".join(k for k,v in m["variants"].items() if v["format"]=="tflite"))'); do
    dermedge evaluate segment --images "$DATA/images" --masks "$DATA/masks" --labels runs/classify/split.csv \
        --split test --bundle "$BUNDLE" --variant "$variant" --threads 2 --json "$OUT/${variant}_segment.json"
    dermedge evaluate classify --images "$DATA/images" --labels runs/classify/split.csv --split test \
        --bundle "$BUNDLE" --variant "$variant" --threads 2 --json "$OUT/${variant}_classify.json" \
        --plots "$OUT/${variant}_plots"
done
python benchmarks/deployed_table.py "$OUT"
