#!/usr/bin/env bash
# The INT8 figures (issue 14): a trained checkpoint's pruned and dense graphs in fp32 and INT8 for ONNX Runtime and
# OpenVINO, timed interleaved (bench --compare) on the task's dev split in dataset order, 2 threads, batch 1 and 32,
# and the INT8 pruned graph gated with `check` against its checkpoint (accuracy and decisions, reported).
#   bash scripts/int8_bench.sh CKPT [OUT] [TASK]      # OUT defaults to runs/int8, TASK to sst2
#   BENCH_ARGS="--max-examples 256" CHECK_ARGS="--max-examples 500" INT8_ARGS="--max-examples 500" \
#     bash scripts/int8_bench.sh runs/imdb runs/int8-imdb imdb      # long texts: slices
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
ckpt=${1:?usage: bash scripts/int8_bench.sh CKPT [OUT] [TASK]}
out=${2:-runs/int8}
task=${3:-sst2}
mkdir -p "$out"
# One INT8 gate for pruned and dense graphs: the task metric within 0.5 point of the fp32 model's (--max-metric-drop).
for target in onnx openvino; do
  [ -e "$out/pruned-$target" ] || ltp-deploy export "$ckpt" --target "$target" -o "$out/pruned-$target"
  [ -e "$out/dense-$target" ] || ltp-deploy export "$ckpt" --target "$target" --dense -o "$out/dense-$target"
  [ -e "$out/pruned-$target-int8" ] || ltp-deploy export "$ckpt" --target "$target" --precision int8 \
    --task "$task" ${INT8_ARGS:-} -o "$out/pruned-$target-int8"
  [ -e "$out/dense-$target-int8" ] || ltp-deploy export "$ckpt" --target "$target" --dense --precision int8 \
    --task "$task" ${INT8_ARGS:-} -o "$out/dense-$target-int8"
done
# A B pairs: INT8 pruned over fp32 pruned (INT8's gain), INT8 pruned over INT8 dense, fp32 pruned over fp32 dense.
pairs="pruned-T-int8:pruned-T pruned-T-int8:dense-T-int8 pruned-T:dense-T"
for rt in onnx:onnxruntime openvino:openvino; do
  IFS=: read -r target backend <<< "$rt"
  for pair in $pairs; do
    IFS=: read -r a b <<< "${pair//T/$target}"
    ltp-deploy bench "$out/$a" --compare "$out/$b" --backend "$backend" --task "$task" --batch-size 1,32 \
      --threads 2 --warmup 10 ${BENCH_ARGS:-} --json "$out/$a-vs-$b.json" --overwrite
  done
  ltp-deploy check "$out/pruned-$target-int8" --task "$task" --reference "$ckpt" --json "$out/check-$target-int8.json" \
    ${CHECK_ARGS:-} --overwrite || true
  ltp-deploy check "$out/pruned-$target" --task "$task" --reference "$ckpt" --json "$out/check-$target.json" \
    ${CHECK_ARGS:-} --overwrite || true
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| runtime | A | B | batch | speedup A over B (p10-p90) |")
print("|---|---|---|---|---|")
for target in ("onnx", "openvino"):
    for a, b in (("pruned-T-int8", "pruned-T"), ("pruned-T-int8", "dense-T-int8"), ("pruned-T", "dense-T")):
        a, b = a.replace("T", target), b.replace("T", target)
        report = json.loads((out / f"{a}-vs-{b}.json").read_text())
        for r in report["results"]:
            c = r["comparison"]
            print(f"| {target} | {a} | {b} | {r['batch_size']} | x{c['speedup']:.2f} ({c['ratio_p10']:.2f}-{c['ratio_p90']:.2f}) |")
print()
print("| runtime | graph | dev metric | masked reference | predictions agree | decisions equal |")
print("|---|---|---|---|---|---|")
for target in ("onnx", "openvino"):
    for name in (f"check-{target}", f"check-{target}-int8"):
        r = json.loads((out / f"{name}.json").read_text())
        res, a = r["results"], r["agreement"]
        print(f"| {target} | {r['model']['weights']} | {100 * res['graph']['value']:.2f} | "
              f"{100 * res['reference']['value']:.2f} | {100 * a['predictions']:.2f}% | "
              f"{100 * (1 - a['decision_mismatch_rate']):.1f}% |")
PY
