"""``ltp-deploy export CKPT --target onnx|openvino -o OUT``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.exporters import TARGETS, WEIGHT_PRECISIONS
from ltp_deploy.commands.options import Data, Output, Overwrite, Task, TextColumn, TextPairColumn, column

HELP = "Export a checkpoint to ONNX (or OpenVINO IR) with token dropping, validated against torch."
EXAMPLES = """\b
Examples:
  ltp-deploy export runs/sst2-ltp --target onnx -o out/sst2-onnx
  ltp-deploy export runs/sst2-ltp --target onnx --dense -o out/sst2-dense
  ltp-deploy export my-bert/ --spec pruning_spec.json --target openvino -o out/bert-ov
  ltp-deploy export runs/sst2-ltp --target openvino -o out/sst2-ov
  ltp-deploy export runs/sst2-ltp --target openvino --precision fp16 -o out/sst2-ov16
  ltp-deploy export runs/sst2-ltp --target openvino --single-sequence -o out/sst2-ov-b1
  ltp-deploy export runs/sst2-ltp --target onnx --precision int8 --task sst2 -o out/sst2-int8
  ltp-deploy export runs/sst2-ltp --target onnx --precision int8 --int8-activations dynamic --task sst2 \
      -o out/sst2-int8-dynamic                          # per-batch activation scales: no calibration
  ltp-deploy export runs/sst2-ltp --target openvino --precision int8 --task sst2 -o out/sst2-ov-int8
  ltp-deploy export ltp-roberta/ --data dev.tsv --text-column sentence -o out/ltp
"""


# The choices --help lists, from the exporters' table
Target = Enum("Target", {name: name for name in TARGETS}, type=str)
Precision = Enum("Precision", {name: name for name in WEIGHT_PRECISIONS}, type=str)


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint folder (Hugging Face or original LTP layout).")],
    output: Output,
    target: Annotated[Target, typer.Option("--target", "-t", help="Export format.")] = Target("onnx"),
    precision: Annotated[Precision, typer.Option(
        "--precision", help="Stored weights; fp16 with --target openvino only (default --atol 1e-2; kept counts "
                            "must still match on real sentences); int8 on both targets (needs --task, or --data "
                            "and --calibration-data; gated on the task metric: --max-metric-drop).")] = Precision("fp32"),
    max_metric_drop: Annotated[Optional[float], typer.Option(
        "--max-metric-drop", help="INT8: points of the task's metric (accuracy, Pearson, ... x100) the INT8 graph "
                                  "may lose against the fp32 model on the validation sentences (default 0.5).")] = None,
    min_agreement: Annotated[Optional[float], typer.Option(
        "--min-agreement", help="INT8: also ask this fraction of predictions to agree with the fp32 model (e.g. "
                                "0.99; not gated by default).")] = None,
    int8_scope: Annotated[Optional[str], typer.Option(
        "--int8-scope", help="INT8: 'all' quantizes every projection; 'prefix' keeps the layers before the first "
                             "pruning layer in fp32; 'decisions' also the Q/K/V that feed each keep decision; 'auto' "
                             "(default) tries them in that order and keeps the first that passes the gate.")] = None,
    int8_activations: Annotated[Optional[str], typer.Option(
        "--int8-activations", help="INT8 with --target onnx: 'static' (default: calibrated on training sentences, so "
                                   "a sentence's answer does not depend on its batchmates) or 'dynamic' (scales per "
                                   "batch at run time, no calibration). OpenVINO's NNCF is always static.")] = None,
    calibration_data: Annotated[Optional[Path], typer.Option(
        "--calibration-data", help="INT8 with static activations (the default): calibration sentences (a "
                                   "task-layout file; default: a seeded slice of --task's train split).")] = None,
    dense: Annotated[bool, typer.Option("--dense", help="Same weights with pruning off (the timing baseline).")] = False,
    single_sequence: Annotated[bool, typer.Option(
        "--single-sequence", help="Batch-1 graph for latency serving: inputs (1, length), padding dropped up front, "
                                  "no masks inside; larger batches run one row per call.")] = False,
    batch1_graph: Annotated[bool, typer.Option(
        "--batch1-graph/--no-batch1-graph", help="Also write the batch-1 graph (model-b1.onnx/.xml) that runtimes "
                                                 "run for batches of one (the faster form there).")] = True,
    spec: Annotated[Optional[Path], typer.Option(
        "--spec", help="A pruning_spec.json (or its folder) to use instead of the checkpoint's own.")] = None,
    data: Data = None,
    task: Task = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    max_examples: Annotated[Optional[int], typer.Option(
        "--max-examples", help="Real sentences used for validation (default 64; INT8 1000).")] = None,
    atol: Annotated[Optional[float], typer.Option(
        "--atol", help="Largest allowed |logit difference| against torch (default 1e-4; 1e-2 for fp16).")] = None,
    opset: Annotated[Optional[int], typer.Option(
        "--opset", help="ONNX opset (default: the exporter's); --target onnx only.")] = None,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.exporters import ExportSettings, run_export

    settings = ExportSettings(
        checkpoint=checkpoint, output=output, target=Target(target).value, precision=Precision(precision).value,
        dense=dense, spec=spec, single_sequence=single_sequence, batch1_graph=batch1_graph, data=data, task=task,
        text_column=column(text_column), text_pair_column=column(text_pair_column), max_examples=max_examples,
        atol=atol, opset=opset, overwrite=overwrite, max_metric_drop=max_metric_drop, min_agreement=min_agreement,
        int8_scope=int8_scope, int8_activations=int8_activations, calibration_data=calibration_data)
    result = run_export(settings)
    print(summary(result.graph, result.metadata), file=sys.stdout)


def summary(graph: Path, metadata: dict) -> str:
    """The one line printed after a successful export."""
    v = metadata["validation"]
    if v.get("rule") == "int8-outcomes":
        return int8_summary(graph, metadata)
    tolerated = v.get("tolerated") or []
    kept = (f"kept counts identical except {len(tolerated)} random-input case(s) tolerated for fp16"
            if tolerated else "kept counts identical")
    form = ", single sequence" if metadata.get("single_sequence") else ""
    batch1 = metadata.get("batch1_graph")
    also = ""
    if batch1:
        b = metadata["batch1_validation"]
        also = f"; batch-1 graph {batch1}: max |logit diff| {b['max_abs_diff']:.1e}"
    return (f"exported {graph} ({metadata['pruning']}{form}, {metadata['precision']}, opset {metadata['opset']}): "
            f"validated on {len(v['cases'])} cases in {v['runtime']}, max |logit diff| {v['max_abs_diff']:.1e} "
            f"(atol {v['atol']:.0e}), {kept}{also}")


def int8_summary(graph: Path, metadata: dict) -> str:
    """The line after an INT8 export: the scope kept, the gate's figures, agreement and kept counts."""
    v, q = metadata["validation"], metadata.get("quantization") or {}
    tried = [t["scope"] for t in q.get("trials", [])]
    scope = q.get("scope") + (f" (after {', '.join(tried[:-1])} failed the gate)" if len(tried) > 1 else "")
    gate = (f"{v['metric']} {100 * v['metric_int8']:.2f}% against fp32's {100 * v['metric_fp32']:.2f}% "
            f"({-v['metric_drop']:+.2f} points, at most -{v['max_metric_drop']:g} allowed), "
            if v.get("metric") else "")
    agreement = f" (>= {100 * v['min_agreement']:g}%)" if v.get("min_agreement") else ""
    return (f"exported {graph} ({metadata['pruning']}, int8 scope {scope}: {q.get('quantized_matmuls')} MatMuls "
            f"quantized, {len(q.get('fp32', []))} parts kept fp32): validated on {v['sentences']} real sentences "
            f"(batch {v['batch_size']}) in {v['runtime']}: {gate}predictions agree on "
            f"{100 * v['agreement']:.2f}%{agreement}, max |logit diff| {v['max_abs_diff']:.2f}, kept counts equal "
            f"per layer {', '.join(f'{100 * k:.0f}%' for k in v['kept_agreement'])}")
