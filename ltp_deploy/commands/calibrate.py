"""``ltp-deploy calibrate CKPT --task TASK (--target-flops-reduction X | --max-metric-drop D) -o OUT``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.options import Output, Overwrite, Task

HELP = ("Prune a fine-tuned checkpoint without training: search a one-parameter family of per-layer thresholds "
        "(thr_l = a * l / L) or LTP top-k keep rates on a slice of the training data (never dev) for a FLOPs "
        "target (met within 1% on that slice) or for the largest FLOPs reduction within a metric-drop budget; "
        "report dev metric and FLOPs reduction; write a checkpoint with the spec (weights unchanged).")
EXAMPLES = """\b
Examples:
  ltp-deploy calibrate runs/sst2-ltp-dense --task sst2 --target-flops-reduction 1.6 -o runs/sst2-cal16
  ltp-deploy calibrate runs/sst2-ltp-dense --task sst2 --max-metric-drop 1.0 --mode topk -o runs/sst2-topk
  ltp-deploy calibrate ltp-roberta/ --task mrpc --target-flops-reduction 2 --calibration-examples 2000 -o out/c2
"""


class Mode(str, Enum):
    absolute_threshold = "absolute_threshold"
    topk = "topk"
    rank_bins = "rank_bins"


def calibrate(
    checkpoint: Annotated[Path, typer.Argument(help="Fine-tuned checkpoint folder (Hugging Face or LTP layout).")],
    output: Output,
    task: Task = None,
    target_flops_reduction: Annotated[Optional[float], typer.Option(
        "--target-flops-reduction", help="Reach this dense/pruned FLOPs ratio (> 1), within 1% on the "
                                         "calibration slice.")] = None,
    max_metric_drop: Annotated[Optional[float], typer.Option(
        "--max-metric-drop", help="Largest FLOPs reduction whose calibration metric drops at most this many "
                                  "points (metric x 100).")] = None,
    mode: Annotated[Mode, typer.Option("--mode", help="The spec family searched.")] = Mode.absolute_threshold,
    calibration_examples: Annotated[int, typer.Option(
        "--calibration-examples", help="Random training examples searched on.")] = 1000,
    calibration_data: Annotated[Optional[Path], typer.Option(
        "--calibration-data", help="Task-layout file to calibrate on (default: GLUE_DIR's train.tsv).")] = None,
    dev_data: Annotated[Optional[Path], typer.Option(
        "--dev-data", help="Task-layout file to report on (default: GLUE_DIR's dev.tsv).")] = None,
    max_eval_examples: Annotated[Optional[int], typer.Option(
        "--max-eval-examples", help="Report on the first N dev examples (default: all).")] = None,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Tokens per example (default: the task's, 64 for SST-2, 512 for IMDB, else 128).")] = None,
    n_ref: Annotated[int, typer.Option("--n-ref", help="Score normaliser of the threshold spec (LTP: 128).")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the calibration slice.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.calibration.calibrate import CalibrateSettings
    from ltp_deploy.calibration.calibrate import calibrate as run_calibrate
    from ltp_deploy.errors import LtpDeployError

    if task is None:
        raise LtpDeployError("No --task given: name the task whose data calibrates, e.g. --task sst2.")
    report = run_calibrate(CalibrateSettings(
        checkpoint=checkpoint, task=task, output=output, target_flops_reduction=target_flops_reduction,
        max_metric_drop=max_metric_drop, mode=Mode(mode).value, calibration_examples=calibration_examples,
        calibration_data=calibration_data, dev_data=dev_data, max_eval_examples=max_eval_examples,
        max_length=max_length, n_ref=n_ref, seed=seed, overwrite=overwrite))
    print(summary(report))


def summary(report) -> str:
    """Two lines: the calibration outcome (with the tolerance) and the dev outcome."""
    r, dev = report.result, report.dev
    goal = (f"target {r.goal['target_flops_reduction']:g}x within {100 * r.goal['tolerance']:g}%: "
            f"{'met' if r.met else 'NOT met (closest setting kept)'}" if "target_flops_reduction" in r.goal
            else f"metric drop <= {r.goal['max_metric_drop']:g} points")
    return (f"calibration ({r.calibration.examples} train examples, {goal}): {r.family.parameter} {r.value:.5g}, "
            f"FLOPs reduction {r.calibration.flops_reduction:.3f}x, {r.calibration.metric} drop "
            f"{r.metric_drop_points:.2f} points\n"
            f"wrote {report.output}: dev {dev.metric} {100 * dev.value:.2f} (dense {100 * report.dense_dev.value:.2f}, "
            f"drop {report.dev_metric_drop_points:.2f} points), FLOPs reduction {dev.flops_reduction:.3f}x, kept "
            f"{', '.join(f'{k:.1f}' for k in dev.mean_kept)} of {dev.mean_length:.1f} tokens")
