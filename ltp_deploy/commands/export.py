"""``ltp-deploy export CKPT --target onnx|openvino -o OUT``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

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
  ltp-deploy export runs/sst2-ltp --target onnx --precision int8 --int8-activations static --task sst2 \
      -o out/sst2-int8-static                           # batch-invariant: calibrated activation scales
  ltp-deploy export runs/sst2-ltp --target openvino --precision int8 --task sst2 -o out/sst2-ov-int8
  ltp-deploy export ltp-roberta/ --data dev.tsv --text-column sentence -o out/ltp
"""


class Target(str, Enum):
    onnx = "onnx"
    openvino = "openvino"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint folder (Hugging Face or original LTP layout).")],
    output: Output,
    target: Annotated[Target, typer.Option("--target", "-t", help="Export format.")] = Target.onnx,
    precision: Annotated[Precision, typer.Option(
        "--precision", help="Stored weights; fp16 with --target openvino only (default --atol 1e-2; kept counts "
                            "must still match on real sentences); int8 on both targets (needs --task or --data; "
                            "gated on prediction agreement >= 99% and --atol 1.5).")] = Precision.fp32,
    min_agreement: Annotated[Optional[float], typer.Option(
        "--min-agreement", help="INT8: prediction agreement with the fp32 model the validation asks for (default "
                                "0.99).")] = None,
    int8_scope: Annotated[str, typer.Option(
        "--int8-scope", help="INT8: 'decisions' keeps what feeds the keep decisions in fp32 (agreement >= 99%); "
                             "'all' quantizes every projection (faster; decisions move, so lower "
                             "--min-agreement).")] = "decisions",
    int8_activations: Annotated[str, typer.Option(
        "--int8-activations", help="INT8 with --target onnx: 'dynamic' (activation scales per batch at run time) "
                                   "or 'static' (calibrated on training sentences: a sentence's answer does not "
                                   "depend on its batchmates). OpenVINO's NNCF is always static.")] = "dynamic",
    calibration_data: Annotated[Optional[Path], typer.Option(
        "--calibration-data", help="INT8 with --target openvino or --int8-activations static: calibration "
                                   "sentences (a task-layout file; default: a seeded slice of --task's train "
                                   "split).")] = None,
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
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.data import load_examples
    from ltp_deploy.errors import LtpDeployError
    from ltp_deploy.outputs import check_output
    from ltp_deploy.paths import refuse_symlink_loops
    from ltp_deploy.spec import PruningSpec

    from ltp_deploy.exporters.validate import INT8_SENTENCES

    target, precision = Target(target).value, Precision(precision).value
    if precision == "fp16" and target != "openvino":
        raise LtpDeployError(f"--precision fp16 is an OpenVINO IR option, not {target}: "
                             "add --target openvino or drop --precision.")
    if int8_scope != "decisions" and precision != "int8":
        raise LtpDeployError("--int8-scope applies to --precision int8: add it or drop --int8-scope.")
    if min_agreement is not None and precision != "int8":
        raise LtpDeployError("--min-agreement is the INT8 validation's bound: add --precision int8 or drop it.")
    static = precision == "int8" and (target == "openvino" or int8_activations == "static")
    if int8_activations != "dynamic" and not (precision == "int8" and target == "onnx"):
        raise LtpDeployError("--int8-activations applies to --precision int8 --target onnx (OpenVINO's INT8 is "
                             "always calibrated): drop it, or add those options.")
    if calibration_data is not None and not static:
        raise LtpDeployError("--calibration-data is for --precision int8 with --target openvino or "
                             "--int8-activations static (dynamic INT8 needs no calibration): drop it, or add "
                             "those options.")
    if opset is not None and target != "onnx":
        raise LtpDeployError("--opset applies to --target onnx only: drop --opset for openvino.")
    if spec is not None and dense:
        raise LtpDeployError("--spec and --dense contradict each other: drop one of them.")
    rules = {"inputs": (checkpoint, spec, data, calibration_data), "overwrite": overwrite}
    refuse_symlink_loops([(checkpoint, "Checkpoint"), (spec, "Spec file"), (data, "Data file"),
                          (calibration_data, "Data file")])  # named before the output rules resolve them
    check_output(output, "export", **rules)
    ckpt = load_checkpoint(checkpoint, spec=PruningSpec.read(spec) if spec else None, dense=dense)
    examples = None
    if data or task:
        examples = load_examples(data, task, text_column=column(text_column),
                                 text_pair_column=column(text_pair_column))
        examples = examples.take(max_examples or (INT8_SENTENCES if precision == "int8" else 64))
    calibration, note = _calibration(static, calibration_data, task, text_column, text_pair_column)
    if target == "openvino":
        from ltp_deploy.exporters.openvino import export_openvino

        result = export_openvino(ckpt, output, dense=dense, examples=examples, atol=atol, precision=precision,
                                 single_sequence=single_sequence, batch1_graph=batch1_graph,
                                 calibration=calibration, calibration_note=note, min_agreement=min_agreement,
                                 int8_scope=int8_scope, **rules)
    else:
        from ltp_deploy.exporters.onnx import export_onnx

        result = export_onnx(ckpt, output, dense=dense, examples=examples, atol=atol, opset=opset,
                             single_sequence=single_sequence, batch1_graph=batch1_graph, precision=precision,
                             min_agreement=min_agreement, int8_scope=int8_scope,
                             int8_activations=int8_activations, calibration=calibration, calibration_note=note,
                             **rules)
    print(summary(result.graph, result.metadata), file=sys.stdout)


def _calibration(static: bool, calibration_data: Path | None, task: str | None, text_column, text_pair_column):
    """Calibration sentences of static INT8 (OpenVINO's, or ONNX Runtime's with static activations):
    ``CALIBRATION_ROWS`` seeded rows of the given file or of the task's train split (never dev), and the note the
    metadata records; (None, None) when nothing is calibrated."""
    from ltp_deploy.data import load_examples
    from ltp_deploy.exporters.int8 import CALIBRATION_ROWS, CALIBRATION_SEED, missing_calibration

    if not static:
        return None, None
    if calibration_data is None and task is None:
        raise missing_calibration("Static INT8 (OpenVINO's, or --int8-activations static)")
    split = "train" if calibration_data is None else "given file"
    pool = load_examples(calibration_data, task, "train", text_column=column(text_column),
                         text_pair_column=column(text_pair_column))
    note = {"split": split, "seed": CALIBRATION_SEED, "drawn_from": len(pool)}
    return pool.subset(CALIBRATION_ROWS, seed=CALIBRATION_SEED), note


def summary(graph: Path, metadata: dict) -> str:
    """The one line printed after a successful export."""
    v = metadata["validation"]
    if v.get("rule") == "int8-outcomes":
        q = metadata.get("quantization") or {}
        return (f"exported {graph} ({metadata['pruning']}, int8: {q.get('quantized_matmuls')} MatMuls quantized, "
                f"{len(q.get('fp32', []))} parts kept fp32): validated on {v['sentences']} real sentences "
                f"(batch {v['batch_size']}) in {v['runtime']}, predictions agree on {100 * v['agreement']:.2f}% (>= "
                f"{100 * v['min_agreement']:g}%), max |logit diff| {v['max_abs_diff']:.2f} (atol {v['atol']:g}), "
                f"kept counts equal per layer {', '.join(f'{100 * k:.0f}%' for k in v['kept_agreement'])}")
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
