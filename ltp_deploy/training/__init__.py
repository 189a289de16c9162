"""Make a learned-threshold (LTP) checkpoint on a CPU: dense fine-tuning, soft thresholds, hard fine-tuning.

Three stages, each a plain AdamW loop with linear warm-up and decay, batches padded per batch and grouped by
length (sentences of similar length share a batch, so a batch of SST-2 phrases is padded to ~14 tokens instead
of ~40: three times less work for the same examples):

0. **dense** (only when the model has no trained head, e.g. the bare MiniLM encoder): fine-tune encoder + head.
   The result is saved as its own checkpoint: the dense baseline for ``calibrate``, ``export --dense`` and bench.
1. **soft**: each layer l > 0 gets the mask ``sigmoid((s - thr_l) / T)``, ``s`` being that layer's LTP score with
   the constant ``n_ref`` normaliser; no token is dropped. By default (``--soft-masking attention``) a token then
   weighs in later layers' attention by the product of its masks so far (as a key and in the scores), so that 0/1
   masks are exactly the hard rule; LTP's own form (``outputs``) multiplies the layer's output rows instead. T
   shrinks over the stage (``--final-temperature``). The loss adds a FLOPs budget's Lagrangian (default,
   ``--target-flops-reduction``) on the hard rule's FLOPs of the batch, with the soft masks' gradient, its target
   warming up from 1x (``--budget-warmup``), or LTP's ``lambda * sum_l mean(mask_l)``. Weights and thresholds
   train together; the thresholds have their own optimizer and learning rate and never go below 0. With
   ``--scorer learned`` the score is a linear scorer's on the attention block's output (``soft.LearnedScorers``),
   trained here at its own rate; the checkpoint keeps it for the layers that prune.
2. **hard**: the weights are fine-tuned under the deployed rule (``PrunedClassifier(cfg, spec)``, whose gather is
   differentiable for the surviving tokens), so they adapt to really losing the dropped tokens. Under a budget the
   thresholds are scaled to hold it, first on the training batches, then once on the dev inputs (``budget``).
   By default the budget is an upper bound (``--max-metric-drop``, 1 point unless a budget or lambda is given by
   name): the thresholds then come down until a tuning slice held out of the training examples is within that
   many points of the dense model (``budget.hold_metric``); dev labels are never read before the report.
   A layer that then drops no dev token gets threshold 0 (``--keep-idle-pruners`` keeps it): the export skips it.

Modules: ``settings`` (options, report), ``recipes`` (per-task defaults: IMDB has its own), ``batches``
(data), ``soft`` (stage 1's mask and its cost), ``budget``, ``teacher`` (the distillation teacher's outputs, kept
per example), ``stages`` (the loops), ``run`` (``train``).

Evaluation (after each stage, on the dev split) always uses the hard rule. Labels and weights must be finite: the
data readers refuse a NaN/inf label and ``load_checkpoint`` NaN/inf weights before anything trains; a stage
whose loss (checked every step) or weights (at its end) turn NaN/inf stops with ``TrainingDiverged``.

Example::

    report = train(TrainSettings(model="minilm/", task="sst2", output="runs/sst2-ltp"))
    report.final.value, report.final.flops_reduction      # e.g. 0.880, 1.6 (at most 2x, within 1 point)
"""

from ltp_deploy.training.batches import TrainData, length_grouped_batches, stage_steps
from ltp_deploy.training.budget import BudgetController, Lagrangian, drop_idle_pruners, hold_metric, meet_budget
from ltp_deploy.training.run import train
from ltp_deploy.training.settings import DEFAULT_TARGET, StageLog, TrainReport, TrainSettings
from ltp_deploy.training.soft import (LearnedScorers, Thresholds, final_importance, hard_flops_ratio, importance_loss,
                                      mask_penalty, soft_flops_ratio, soft_forward)
from ltp_deploy.training.stages import TrainingDiverged, _distill_loss, fit_dense, fit_hard, learn_thresholds
from ltp_deploy.training.teacher import TeacherMemo

__all__ = ["train", "TrainSettings", "TrainReport", "StageLog", "DEFAULT_TARGET", "TrainData", "Thresholds", "LearnedScorers",
           "soft_forward", "mask_penalty", "soft_flops_ratio", "hard_flops_ratio", "Lagrangian", "BudgetController",
           "meet_budget", "hold_metric", "drop_idle_pruners", "final_importance", "importance_loss",
           "fit_dense", "learn_thresholds", "fit_hard", "length_grouped_batches", "stage_steps", "_distill_loss",
           "TeacherMemo", "TrainingDiverged"]
