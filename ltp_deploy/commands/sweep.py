"""``ltp-deploy sweep CKPT --task TASK [--mode ...] [--points N] [--trained CKPT ...] [--train-targets X,...
--train-dir DIR] --json OUT [--plot OUT.png]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.calibrate import Mode
from ltp_deploy.commands.options import Overwrite, Task

HELP = ("Dev metric against FLOPs reduction over a family of pruning settings (dense point included) for one "
        "checkpoint's weights, beside checkpoints trained to FLOPs budgets (given, or trained here), as JSON and "
        "a PNG plot.")
EXAMPLES = """\b
Examples:
  ltp-deploy sweep runs/sst2-ltp-dense --task sst2 --json sweep.json --plot sweep.png
  ltp-deploy sweep runs/sst2-ltp --task sst2 --mode topk --points 6 --json topk.json --plot topk.png
  ltp-deploy sweep runs/sst2-ltp-dense --task sst2 --trained runs/sst2-ltp --json sweep.json --plot sweep.png
  ltp-deploy sweep runs/sst2-ltp-dense --task sst2 --train-targets 2.0,2.5,3.0 --train-dir runs/sweep-trained \\
      --json sweep.json --plot sweep.png     # trains each budget once; a rerun reuses runs/sweep-trained/target-X
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
        "--max-eval-examples", help="Use the first N examples (default: all); --train-targets training "
                                    "is measured on them too.")] = None,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Tokens per example (default: the task's, 64 for SST-2, 512 for IMDB, else 128).")] = None,
    n_ref: Annotated[int, typer.Option("--n-ref", help="Score normaliser of the threshold specs (LTP: 128).")] = 128,
    trained: Annotated[Optional[list[Path]], typer.Option(
        "--trained", help="A checkpoint trained to a FLOPs budget (ltp-deploy train's output, or any checkpoint "
                          "with a pruning spec and CKPT's architecture) to add as a point; repeat for more.")] = None,
    train_targets: Annotated[Optional[str], typer.Option(
        "--train-targets", help="Comma-separated FLOPs budgets (e.g. 2.0,2.5,3.0): train CKPT to each (ltp-deploy "
                                "train's defaults) and add the results as points; needs --train-dir.")] = None,
    train_dir: Annotated[Optional[Path], typer.Option(
        "--train-dir", help="Folder of the --train-targets checkpoints (DIR/target-X); one already trained to X "
                            "from CKPT is reused.")] = None,
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
        max_eval_examples=max_eval_examples, max_length=max_length, n_ref=n_ref, overwrite=overwrite,
        trained=tuple(trained or ()), train_targets=parse_targets(train_targets), train_dir=train_dir),
        log=lambda line: print(line, file=sys.stderr, flush=True))
    for p in report["points"]:
        setting = _setting(p)
        print(f"{setting:>32}: {report['metric']} {100 * p['metric']:.2f}, FLOPs reduction {p['flops_reduction']:.2f}x")
    print(f"wrote {json_out}" + (f" and {plot}" if plot else ""))


def _setting(point: dict) -> str:
    """How the printed table names a point: dense, the family's value, trained budget, or the kind."""
    if point["dense"]:
        return "dense"
    if point["parameter"]:
        return f"{point['parameter']} {point['value']:.4g}"
    if point["kind"] == "trained":
        return f"trained {point['budget']:g}x" if point.get("budget") else f"trained {Path(point['checkpoint']).name}"
    return point["kind"]


def parse_targets(text: str | None) -> tuple[float, ...]:
    """``"2.0,2.5,3.0"`` -> ``(2.0, 2.5, 3.0)``; a bad list raises the one-sentence error (the values are
    ``SweepSettings.validate``'s to check)."""
    from ltp_deploy.errors import LtpDeployError

    if text is None:
        return ()
    try:
        targets = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise LtpDeployError(f"--train-targets {text!r} is not a list of numbers: write e.g. 2.0,2.5,3.0.") from None
    if not targets:
        raise LtpDeployError(f"--train-targets {text!r} lists no budget: write e.g. 2.0,2.5,3.0.")
    return targets
