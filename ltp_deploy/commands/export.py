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
  ltp-deploy export ltp-roberta/ --data dev.tsv --text-column sentence -o out/ltp
"""


class Target(str, Enum):
    onnx = "onnx"
    openvino = "openvino"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint folder (Hugging Face or original LTP layout).")],
    output: Output,
    target: Annotated[Target, typer.Option("--target", "-t", help="Export format.")] = Target.onnx,
    precision: Annotated[Precision, typer.Option(
        "--precision", help="Stored weights; fp16 with --target openvino only (default --atol 1e-2; kept counts "
                            "must still match on real sentences).")] = Precision.fp32,
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
    max_examples: Annotated[int, typer.Option("--max-examples", help="Real sentences used for validation.")] = 64,
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
    from ltp_deploy.spec import PruningSpec

    target, precision = Target(target).value, Precision(precision).value
    if precision == "fp16" and target != "openvino":
        raise LtpDeployError(f"--precision fp16 is an OpenVINO IR option, not {target}: "
                             "add --target openvino or drop --precision.")
    if opset is not None and target != "onnx":
        raise LtpDeployError("--opset applies to --target onnx only: drop --opset for openvino.")
    if spec is not None and dense:
        raise LtpDeployError("--spec and --dense contradict each other: drop one of them.")
    rules = {"inputs": (checkpoint, spec, data), "overwrite": overwrite}
    check_output(output, "export", **rules)
    ckpt = load_checkpoint(checkpoint, spec=PruningSpec.read(spec) if spec else None, dense=dense)
    examples = None
    if data or task:
        examples = load_examples(data, task, text_column=column(text_column),
                                 text_pair_column=column(text_pair_column)).take(max_examples)
    if target == "openvino":
        from ltp_deploy.exporters.openvino import export_openvino

        result = export_openvino(ckpt, output, dense=dense, examples=examples, atol=atol, precision=precision,
                                 single_sequence=single_sequence, batch1_graph=batch1_graph, **rules)
    else:
        from ltp_deploy.exporters.onnx import export_onnx

        result = export_onnx(ckpt, output, dense=dense, examples=examples,
                             atol=1e-4 if atol is None else atol, opset=opset, single_sequence=single_sequence,
                             batch1_graph=batch1_graph, **rules)
    print(summary(result.graph, result.metadata), file=sys.stdout)


def summary(graph: Path, metadata: dict) -> str:
    """The one line printed after a successful export."""
    v = metadata["validation"]
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
