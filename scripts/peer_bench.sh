#!/usr/bin/env bash
# The figures against the peer (issue 12): a trained checkpoint's pruned and --dense exports timed interleaved
# against the dense graph Optimum exports from the same dense checkpoint, on ONNX Runtime and on OpenVINO running
# that graph, SST-2 dev in dataset order, 2 threads, batch 1 and 32.
#   bash scripts/peer_bench.sh CKPT [OUT]      # CKPT-dense must exist (train writes it); OUT defaults to runs/peer
# Optimum pins transformers<4.58, so it runs from its own venv (.venv-optimum, made here when absent).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
ckpt=${1:?usage: bash scripts/peer_bench.sh CKPT [OUT]}
out=${2:-runs/peer}
dense=${DENSE:-$ckpt-dense}
mkdir -p "$out"
if [ ! -x .venv-optimum/bin/optimum-cli ]; then
  python3 -m venv .venv-optimum
  .venv-optimum/bin/pip install -q torch==2.13.0 "optimum-onnx[onnxruntime]==0.1.0"
fi
[ -e "$out/optimum/model.onnx" ] || HF_HUB_OFFLINE=1 .venv-optimum/bin/optimum-cli export onnx --model "$dense" \
  --task text-classification "$out/optimum"
for target in onnx openvino; do
  [ -e "$out/pruned-$target" ] || ltp-deploy export "$ckpt" --target "$target" --task sst2 -o "$out/pruned-$target"
  [ -e "$out/dense-$target" ] || ltp-deploy export "$ckpt" --target "$target" --dense -o "$out/dense-$target"
done
for rt in onnx:onnxruntime openvino:openvino; do
  IFS=: read -r target backend <<< "$rt"
  for graph in pruned dense; do
    ltp-deploy bench "$out/$graph-$target" --compare "$out/optimum" --backend "$backend" --task sst2 \
      --batch-size 1,32 --threads 2 --warmup 10 --json "$out/$graph-$target-vs-optimum.json" --overwrite
  done
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| runtime | graph | batch | speedup vs Optimum dense (p10-p90) | FLOPs reduction |")
print("|---|---|---|---|---|")
for target in ("onnx", "openvino"):
    for graph in ("pruned", "dense"):
        report = json.loads((out / f"{graph}-{target}-vs-optimum.json").read_text())
        for r in report["results"]:
            c = r["comparison"]
            print(f"| {target} | {graph} | {r['batch_size']} | x{c['speedup']:.2f} "
                  f"({c['ratio_p10']:.2f}-{c['ratio_p90']:.2f}) | {r['model']['flops_reduction']:.2f}x |")
PY
