"""``ltp-deploy export CKPT --target onnx -o OUT``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.options import Data, Output, Task, TextColumn, TextPairColumn, column

HELP = "Export a checkpoint to ONNX (or OpenVINO IR) with token dropping, validated against torch."
EXAMPLES = """\b
Examples:
  ltp-deploy export runs/sst2-ltp --target onnx -o out/sst2-onnx
  ltp-deploy export runs/sst2-ltp --target onnx --dense -o out/sst2-dense
  ltp-deploy export ltp-roberta/ --data dev.tsv --text-column sentence -o out/ltp
"""


class Target(str, Enum):
    onnx = "onnx"


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint folder (Hugging Face or original LTP layout).")],
    output: Output,
    target: Annotated[Target, typer.Option("--target", "-t", help="Export format.")] = Target.onnx,
    dense: Annotated[bool, typer.Option("--dense", help="Same weights with pruning off (the timing baseline).")] = False,
    data: Data = None,
    task: Task = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="Real sentences used for validation.")] = 64,
    atol: Annotated[float, typer.Option("--atol", help="Largest allowed |logit difference| against torch.")] = 1e-4,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset (default: the exporter's).")] = None,
) -> None:
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.data import load_examples
    from ltp_deploy.exporters.onnx import export_onnx

    ckpt = load_checkpoint(checkpoint, dense=dense)
    examples = None
    if data or task:
        examples = load_examples(data, task, text_column=column(text_column),
                                 text_pair_column=column(text_pair_column)).take(max_examples)
    result = export_onnx(ckpt, output, dense=dense, examples=examples, atol=atol, opset=opset)
    v = result.metadata["validation"]
    print(f"exported {result.graph} ({result.metadata['pruning']}, opset {result.metadata['opset']}): "
          f"validated on {len(v['cases'])} cases in {v['runtime']}, max |logit diff| {v['max_abs_diff']:.1e}, "
          "kept counts identical", file=sys.stdout)
