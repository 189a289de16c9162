"""What ``ltp-deploy train`` takes (``TrainSettings``) and what it gives back (``TrainReport``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ltp_deploy.evaluation import Evaluation
from ltp_deploy.data import get_task
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.outputs import check_output
from ltp_deploy.paths import refuse_symlink_loops
from ltp_deploy.spec import SCORERS, PruningSpec
from ltp_deploy.training.recipes import recipe
from ltp_deploy.training.soft import SOFT_MASKING

Log = Callable[[str], None]

# The default FLOPs budget of ``train`` on GLUE: half the FLOPs (LTP reports 2.1x at under a point on GLUE).
DEFAULT_TARGET = recipe("sst2").target

@dataclass
class TrainSettings:
    """Everything ``ltp-deploy train`` takes; the defaults are the SST-2 / MiniLM recipe (reasons beside each).

    Options left at None take the task's default (``recipes.RECIPES``; IMDB has its own): ``resolved()`` fills
    them, and ``train`` runs on the resolved settings.
    """

    model: str | Path  # encoder-only folder (stage 0 runs) or a fine-tuned classifier (stage 0 skipped)
    task: str  # a GLUE task (read from GLUE_DIR) or imdb (IMDB_DIR)
    output: str | Path  # the learned-threshold checkpoint
    # Where the stage-0 dense model goes; default ``<output>-dense``. Unused when the model is already fine-tuned
    # (the input folder is then the dense baseline).
    dense_output: str | Path | None = None
    train_data: str | Path | None = None  # a task-layout train file instead of GLUE_DIR's train.tsv
    dev_data: str | Path | None = None  # a task-layout dev file instead of GLUE_DIR's dev.tsv

    max_length: int | None = None  # None: the task's (data.default_max_length; SST-2: 64, dev max 55, IMDB 512)
    batch_size: int | None = None  # None: the task's (32; IMDB 16)
    seed: int = 0
    max_examples: int | None = None  # train on a seeded subset of this many examples (None: the task's; GLUE all)
    max_eval_examples: int | None = None  # evaluate on the first N dev examples (None: all)
    weight_decay: float = 0.01  # weights only; never the thresholds
    warmup: float = 0.06  # fraction of each stage's steps with a linear warm-up

    # Each stage runs --X-steps optimizer steps, or --X-epochs passes over the training data, or (neither given)
    # its default below. Soft and hard stages default to step counts: how far the thresholds move (threshold_lr x
    # steps) and how much the weights drift towards keeping more tokens in stage 2 do not depend on the data size.

    # Stage 0, dense fine-tuning; default 1 epoch, the NOTICE recipe (docs/results/training-defaults.md).
    dense_epochs: float | None = None
    dense_steps: int | None = None
    dense_lr: float = 5e-5

    # Stage 1, soft thresholds; default 400 steps, LTP's T and initial thresholds; weights at 2e-5.
    # What drives the thresholds up is either a FLOPs budget (the default, ``target_flops_reduction``: ToP's
    # Lagrangian term, held in stage 2 by ``budget.BudgetController`` and met on the dev inputs by
    # ``budget.meet_budget``) or LTP's fixed penalty ``lambda * sum_l mean(mask_l)`` (``lambda_``; one of the two).
    # Why the budget, and what each variant measured: docs/results/training-defaults.md.
    target_flops_reduction: float | None = None  # None: the task's (2.0; IMDB 3.0), unless lambda_ is given
    lambda_: float | None = None  # LTP's fixed penalty instead of a budget
    lagrangian_lr: float = 0.05  # ascent rate of l1 and l2 (their own AdamW, maximising)
    # Fraction of stage 1 over which the budget's target climbs linearly from 1x to X (ToP's warm-up), so that the
    # weights follow the thresholds instead of meeting the whole budget at once; 0 sets X from the start.
    budget_warmup: float = 0.5
    # What the budget counts in stage 1: "hard", the FLOPs of the hard rule on the batch with the soft masks'
    # gradient (``soft.hard_flops_ratio``), or "expected", the soft masks' expected FLOPs (ToP's), which a product
    # of soft masks overstates (docs/results/training-defaults.md).
    budget_counts: str = "hard"
    # What the soft masks act on (``soft.soft_forward``): "attention" weighs each token in later layers' attention
    # by the product of its masks so far (0/1 masks are then the hard rule); "outputs" is LTP's (layer outputs
    # multiplied by the mask, masked tokens still attended to).
    soft_masking: str | None = None  # None: "attention" under a budget, LTP's "outputs" under --lambda
    soft_epochs: float | None = None
    soft_steps: int | None = None
    soft_lr: float = 2e-5  # the weights
    # The thresholds, their own AdamW (score units; the mean score is 1 / n_ref). 1e-4 lets 400 steps reach a
    # budget of 3x; the budget, not this rate, says where they stop.
    threshold_lr: float | None = None  # None: the task's (1e-4; IMDB 4e-4, a quarter of the steps)
    temperature: float = 1e-3  # sigmoid width T in score units (LTP searched 1e-4..2e-3)
    # T shrinks geometrically to this over stage 1, so that the soft forward ends close to the hard rule that
    # stage 2 runs. None: 2e-4 under a budget; under --lambda T stays fixed, as in LTP.
    final_temperature: float | None = None
    # What scores a token (``spec.SCORERS``): "attention" (LTP's column sums) or "learned", one Linear(D, 1) per layer
    # on the attention block's output rows, trained jointly in stage 1 (``soft.LearnedScorers``), at its own rate.
    scorer: str | None = None  # None: the task's ("attention"; IMDB "learned")
    scorer_lr: float = 1e-3
    # Thresholds start at final_token_threshold * l / L (LTP's initialisation; 0 for layer 0).
    final_token_threshold: float = 0.01
    # Layer 0's threshold stays at 0 (prunes nothing), as in LTP: its scores are nearly uniform, so they say little
    # about importance (docs/results/training-defaults.md).
    learn_first_layer: bool = False
    # After stage 2, a layer that drops no token of the budget's dev inputs gets threshold 0 (labels unread):
    # the same decisions there, and its scoring and gather leave the graph.
    drop_idle_pruners: bool = True
    # Score normaliser: s_j = attention received / (heads * n_ref), a constant (never the padded length of a
    # batch). It is a unit: the soft mask and the hard rule see only s * n_ref against thr * n_ref and T * n_ref,
    # so any n_ref gives the same model once thresholds, T and threshold_lr are scaled by 128 / n_ref. 128, not
    # max_length 64, because the scores depend on the real lengths, not on padding: SST-2 sentences are the same
    # ~25 tokens that LTP padded to 128, so LTP's published T and final_token_threshold keep their meaning and the
    # thresholds compare with LTP checkpoints'.
    n_ref: int = 128

    # Stage 2, hard fine-tuning with the thresholds fixed; default 1000 steps. Under a fixed lambda the weights drift
    # towards keeping more tokens; under a budget the controller raises the thresholds to hold it
    # (docs/results/training-defaults.md).
    hard_epochs: float | None = None
    hard_steps: int | None = None
    hard_lr: float = 2e-5
    # Quantization-aware stage 2 (``training.quantize``): the export's INT8 scheme (per-channel int8 weights, static
    # uint8 activation scales) simulated by torch.ao fake quantization through stage 2, the budget search and the
    # metric hold; the checkpoint keeps fp32 weights.
    qat: bool = False
    # Weight a of distillation in stage 2: loss = (1 - a) * task loss + a * distance to the dense model's outputs
    # (KL divergence of the softmax; squared error for regression). The teacher is the model as it was before
    # stage 1, in eval mode. 0 trains on the labels alone, as LTP does.
    distill: float = 0.5
    # Weight of ToP's ranking distillation in stage 1 (``soft.importance_loss``): every pruning layer's scores are
    # pulled towards the dense model's last-layer importance (listwise KL of the normalised scores). 0: off.
    rank_distill: float = 0.0
    # Distil in stage 1 too, with the same weight ``distill`` (the soft masks' logits against the dense model's).
    soft_distill: bool = False
    # Weight of a second distillation term in stage 2: the squared error between the student's and the dense
    # model's last-layer CLS rows (the head's input), added to the loss above. 0 turns it off.
    distill_hidden: float = 0.0
    # The final budget search (``budget.meet_budget``) runs over the first N dev inputs (never their labels);
    # None: the task's (all of dev; IMDB 500, since each run over its 2,000 reviews takes a minute or two).
    budget_examples: int | None = None
    # The budget as an upper bound (``budget.hold_metric``): after the budget search the thresholds come down, by one
    # common factor, to the largest FLOPs reduction whose metric on a tuning slice (``tune_examples`` seeded
    # training examples, held out of training) stays within this many points of the dense model's on that slice.
    # None: the task's (1.0) when neither --target-flops-reduction nor --lambda is given; otherwise off.
    max_metric_drop: float | None = None
    tune_examples: int | None = None  # None: the task's (2,000), at most a tenth of the training examples
    overwrite: bool = False  # replace existing outputs that ltp-deploy did not write

    def validate(self) -> None:
        """Check every option up front, before any data is read or any work starts."""
        self._check_counts()
        self._check_objective()
        self._check_choices()
        refuse_symlink_loops([(self.model, "Model"), (self.train_data, "Data file"),
                              (self.dev_data, "Data file")])  # before the output rules resolve them
        check_output(self.output, "checkpoint", **self.output_rules)
        if self.dense_output is not None:  # asked for by name: checked now, even if stage 0 may not run
            self.check_dense_output()

    def _check_counts(self) -> None:
        """Sizes, step and epoch counts, learning rates."""
        get_task(self.task)
        positive = {"--batch-size": 1 if self.batch_size is None else self.batch_size, "--max-length": self.max_length or 2, "--n-ref": self.n_ref,
                    "--temperature": self.temperature, "--final-temperature": self.end_temperature}
        for name, value in positive.items():
            if not value > 0:
                raise LtpDeployError(f"{name} must be positive, got {value}: give a value above 0.")
        if self.max_length is not None and self.max_length < 2:
            raise LtpDeployError(f"--max-length {self.max_length} is too small: use at least 2 (CLS and SEP).")
        for name, value in {"--max-examples": self.max_examples, "--max-eval-examples": self.max_eval_examples,
                            "--budget-examples": self.budget_examples}.items():
            if value is not None and value < 1:
                raise LtpDeployError(f"{name} must be at least 1, got {value}: give a positive count or leave it out.")
        for name, value in {"--dense-steps": self.dense_steps, "--soft-steps": self.soft_steps,
                            "--hard-steps": self.hard_steps}.items():
            if value is not None and value < 0:
                raise LtpDeployError(f"{name} must be zero (skip the stage) or more, got {value}: fix the count.")
        for name, value in {"--dense-epochs": self.dense_epochs, "--soft-epochs": self.soft_epochs,
                            "--hard-epochs": self.hard_epochs}.items():
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise LtpDeployError(f"{name} must be zero or more, got {value}: give a number of epochs (e.g. 0.5).")
        for name, value in {"--dense-lr": self.dense_lr, "--soft-lr": self.soft_lr,
                            "--threshold-lr": self.threshold_lr, "--hard-lr": self.hard_lr,
                            "--weight-decay": self.weight_decay}.items():
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise LtpDeployError(f"{name} must be zero or more, got {value}: give a non-negative learning rate.")

    def _check_objective(self) -> None:
        """What drives the thresholds: the budget or lambda, and the losses' weights."""
        if self.lambda_ is not None and self.target_flops_reduction is not None:
            raise LtpDeployError("Both --lambda and --target-flops-reduction given: give one (a budget, or LTP's "
                                 "fixed penalty).")
        if self.lambda_ is not None and not (self.lambda_ >= 0 and math.isfinite(self.lambda_)):
            raise LtpDeployError(f"--lambda must be zero or more, got {self.lambda_}: "
                                 "it weighs the kept-token penalty (LTP uses 0.01 to 0.2).")
        target = self.target_flops_reduction
        if target is not None and not (target > 1 and math.isfinite(target)):
            raise LtpDeployError(f"--target-flops-reduction must be above 1, got {target}: give the factor of "
                                 "FLOPs to remove, e.g. 2.0 for half the FLOPs.")
        if not (self.lagrangian_lr > 0 and math.isfinite(self.lagrangian_lr)):
            raise LtpDeployError(f"--lagrangian-lr must be positive, got {self.lagrangian_lr}: 0.01 is usual.")
        if not (self.final_token_threshold >= 0 and math.isfinite(self.final_token_threshold)):
            raise LtpDeployError(f"--final-token-threshold must be zero or more, got {self.final_token_threshold}: "
                                 "LTP uses 0.01 with n_ref 128.")
        if not (self.distill_hidden >= 0 and math.isfinite(self.distill_hidden)):
            raise LtpDeployError(f"--distill-hidden must be zero or more, got {self.distill_hidden}: 0 turns it off.")
        if not (self.rank_distill >= 0 and math.isfinite(self.rank_distill)):
            raise LtpDeployError(f"--rank-distill must be zero or more, got {self.rank_distill}: 0 turns it off.")
        if not 0 <= self.distill <= 1:
            raise LtpDeployError(f"--distill must be a weight in [0, 1], got {self.distill}: 0 turns it off.")
        if not 0 <= self.budget_warmup <= 1:
            raise LtpDeployError(f"--budget-warmup must be a fraction in [0, 1], got {self.budget_warmup}: 0 "
                                 "meets the budget from the first step.")

    def _check_choices(self) -> None:
        """Named choices and the metric hold."""
        if self.budget_counts not in ("hard", "expected"):
            raise LtpDeployError(f"--budget-counts must be hard or expected, got {self.budget_counts!r}: 'hard' "
                                 "steers the FLOPs the deployed rule spends.")
        if self.soft_masking is not None and self.soft_masking not in SOFT_MASKING:
            raise LtpDeployError(f"--soft-masking must be one of {', '.join(SOFT_MASKING)}, got "
                                 f"{self.soft_masking!r}: 'attention' trains as the hard rule runs, 'outputs' "
                                 "is LTP's.")
        if self.scorer is not None and self.scorer not in SCORERS:
            raise LtpDeployError(f"--scorer must be one of {', '.join(SCORERS)}, got {self.scorer!r}: 'attention' "
                                 "is LTP's score, 'learned' trains a linear scorer per layer.")
        if not (self.scorer_lr > 0 and math.isfinite(self.scorer_lr)):
            raise LtpDeployError(f"--scorer-lr must be positive, got {self.scorer_lr}: 1e-3 is the default.")
        if self.max_metric_drop is not None and not (self.max_metric_drop >= 0 and math.isfinite(self.max_metric_drop)):
            raise LtpDeployError(f"--max-metric-drop must be zero or more points, got {self.max_metric_drop}: "
                                 "e.g. 1.0 allows one accuracy point below the dense model.")
        if self.tune_examples is not None and self.tune_examples < 1:
            raise LtpDeployError(f"--tune-examples must be at least 1, got {self.tune_examples}: 2000 is the default.")
        if not 0 <= self.warmup < 1:
            raise LtpDeployError(f"--warmup must be a fraction in [0, 1), got {self.warmup}: 0.06 is usual.")

    def resolved(self) -> TrainSettings:
        """A copy with every option left at None that has a task default filled in (``recipes.recipe``)."""
        r = recipe(self.task)
        defaults = {"batch_size": r.batch_size, "max_examples": r.max_examples, "threshold_lr": r.threshold_lr,
                    "budget_examples": r.budget_examples, "scorer": r.scorer, "tune_examples": r.tune_examples}
        changes = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.lambda_ is None and self.target_flops_reduction is None:
            changes["target_flops_reduction"] = r.target
            if self.max_metric_drop is None:
                changes["max_metric_drop"] = r.max_metric_drop
        for stage, (epochs, steps) in r.stages.items():
            if getattr(self, f"{stage}_epochs") is None and getattr(self, f"{stage}_steps") is None:
                changes[f"{stage}_epochs"], changes[f"{stage}_steps"] = epochs, steps
        return replace(self, **changes)

    @property
    def budget(self) -> float | None:
        """The FLOPs reduction to train to, or None for LTP's fixed lambda."""
        if self.lambda_ is not None:
            return None
        return self.target_flops_reduction if self.target_flops_reduction is not None else recipe(self.task).target

    @property
    def masking(self) -> str:
        """What stage 1's soft masks act on (``soft_masking``, or its default for the budget / lambda recipe)."""
        return self.soft_masking or ("outputs" if self.budget is None else "attention")

    @property
    def end_temperature(self) -> float:
        """T at the end of stage 1 (``final_temperature``, or its default for the budget / lambda recipe)."""
        if self.final_temperature is not None:
            return self.final_temperature
        return self.temperature if self.budget is None else 2e-4

    @property
    def output_rules(self) -> dict:
        """What the outputs may not touch (``outputs.check_output``)."""
        return {"inputs": (self.model, self.train_data, self.dev_data), "overwrite": self.overwrite}

    def check_dense_output(self) -> None:
        """The stage-0 folder, checked once it is known that stage 0 runs: it may not overlap -o either."""
        check_output(self.dense_path, "checkpoint", inputs=(*self.output_rules["inputs"], self.output),
                     overwrite=self.overwrite, option="--dense-output")

    @property
    def dense_path(self) -> Path:
        if self.dense_output is not None:
            return Path(self.dense_output)
        out = Path(self.output)
        return out.with_name(out.name + "-dense")


@dataclass
class StageLog:
    """What one training stage did: steps, wall time, and the loss curve (mean over each stretch of steps)."""

    name: str
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)  # [{"step", "loss", ...}]

    @property
    def first_loss(self) -> float:
        return self.history[0]["loss"] if self.history else float("nan")

    @property
    def last_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else float("nan")


@dataclass
class TrainReport:
    """The outcome of ``train``: evaluations after each stage, the learned spec, logs and output folders."""

    dense: Evaluation  # the dense model (after stage 0, or the input model) on dev
    soft: Evaluation  # the hard rule right after stage 1, before hard fine-tuning
    final: Evaluation  # the written checkpoint on dev
    spec: PruningSpec
    stages: list[StageLog]
    output: Path
    dense_output: Path | None  # None when the input was already fine-tuned
    metadata: dict

    @property
    def metric_drop_points(self) -> float:
        return 100.0 * (self.dense.value - self.final.value)

