#!/usr/bin/env bash
# The length sweep: a random-weight BERT-base-shaped classifier (12 layers, hidden 768, 12 heads) with LTP's top-k
# schedule (token_keep_rate 0.5 and 0.3), synthetic sequences of 64, 128, 256 and 512 tokens, batch 1 and 8, on
# ONNX Runtime CPU and OpenVINO CPU: each pruned export timed interleaved against the packed dense export of the
# same weights (--dense). Writes runs/length-sweep/length-sweep.{json,md,png} and one bench report per point.
# Set SWEEP_LENGTHS / SWEEP_DURATION to shorten it (defaults: "64 128 256 512", 20 s per batch size and point).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
out=${SWEEP_DIR:-runs/length-sweep}
lengths=${SWEEP_LENGTHS:-64 128 256 512}
duration=${SWEEP_DURATION:-20}
here=scripts  # install.sh has cd-ed to the repository root
mkdir -p "$out"
python "$here/length_sweep.py" make "$out"
for target in onnx openvino; do
  [ -e "$out/dense-$target" ] || ltp-deploy export "$out/bert-base" --target "$target" --dense -o "$out/dense-$target"
  for rate in 0.5 0.3; do
    [ -e "$out/topk-$rate-$target" ] || ltp-deploy export "$out/bert-base" --target "$target" \
      --spec "$out/topk-$rate.json" -o "$out/topk-$rate-$target"
  done
done
for rt in ort:onnx:onnxruntime ov:openvino:openvino; do
  IFS=: read -r name target backend <<< "$rt"
  for rate in 0.5 0.3; do
    for len in $lengths; do
      ltp-deploy bench "$out/topk-$rate-$target" --compare "$out/dense-$target" --backend "$backend" \
        --seq-len "$len" --batch-size 1,8 --threads 2 --warmup 2 --duration "$duration" \
        --json "$out/${name}_${rate}_${len}.bench.json" --overwrite
    done
  done
done
python "$here/length_sweep.py" table "$out"
