"""``ltp-deploy sweep CKPT --task TASK [--mode ...] [--points N] --json OUT [--plot OUT.png]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.calibrate import Mode
from ltp_deploy.commands.options import Overwrite, Task

HELP = ("Dev metric against FLOPs reduction over a family of pruning settings (dense point included) for one "
        "checkpoint's weights, as JSON and a PNG plot.")
EXAMPLES = """\b
Examples:
  ltp-deploy sweep runs/sst2-ltp-dense --task sst2 --json sweep.json --plot sweep.png
  ltp-deploy sweep runs/sst2-ltp --task sst2 --mode topk --points 6 --json topk.json --plot topk.png
"""


def sweep(
    checkpoint: Annotated[Path, typer.Argument(help="Fine-tuned checkpoint folder (Hugging Face or LTP layout).")],
    json_out: Annotated[Path, typer.Option("--json", help="Write the sweep (JSON) here.")],
    task: Task = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the plot (PNG) here.")] = None,
    mode: Annotated[Mode, typer.Option("--mode", help="The spec family swept.")] = Mode.absolute_threshold,
    points: Annotated[int, typer.Option("--points", help="Family settings, the dense one included.")] = 8,
    max_flops_reduction: Annotated[float, typer.Option(
        "--max-flops-reduction", help="Thresholds: the strongest setting reaches about this.")] = 2.5,
    min_keep_rate: Annotated[float, typer.Option(
        "--min-keep-rate", help="Top-k: the strongest setting's token_keep_rate.")] = 0.1,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Task-layout file to evaluate on (default: GLUE_DIR's dev.tsv).")] = None,
    max_eval_examples: Annotated[Optional[int], typer.Option(
        "--max-eval-examples", help="Use the first N examples (default: all).")] = None,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Tokens per example (default: the task's, 64 for SST-2, 512 for IMDB, else 128).")] = None,
    n_ref: Annotated[int, typer.Option("--n-ref", help="Score normaliser of the threshold specs (LTP: 128).")] = 128,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.errors import LtpDeployError
    from ltp_deploy.sweep import SweepSettings
    from ltp_deploy.sweep import sweep as run_sweep

    if task is None:
        raise LtpDeployError("No --task given: name the task to evaluate on, e.g. --task sst2.")
    report = run_sweep(SweepSettings(
        checkpoint=checkpoint, task=task, json_out=json_out, plot_out=plot, mode=Mode(mode).value, points=points,
        max_flops_reduction=max_flops_reduction, min_keep_rate=min_keep_rate, data=data,
        max_eval_examples=max_eval_examples, max_length=max_length, n_ref=n_ref, overwrite=overwrite))
    for p in report["points"]:
        setting = "dense" if p["dense"] else (f"{p['parameter']} {p['value']:.4g}" if p["parameter"] else p["kind"])
        print(f"{setting:>32}: {report['metric']} {100 * p['metric']:.2f}, FLOPs reduction {p['flops_reduction']:.2f}x")
    print(f"wrote {json_out}" + (f" and {plot}" if plot else ""))
