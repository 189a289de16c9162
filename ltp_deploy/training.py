"""Make a learned-threshold (LTP) checkpoint on a CPU: dense fine-tuning, soft thresholds, hard fine-tuning.

Three stages, each a plain AdamW loop with linear warm-up and decay, batches padded per batch and grouped by
length (sentences of similar length share a batch, so a batch of SST-2 phrases is padded to ~14 tokens instead
of ~40: three times less work for the same examples):

0. **dense** (only when the model has no trained head, e.g. the bare MiniLM encoder): fine-tune encoder + head.
   The result is saved as its own checkpoint: the dense baseline for ``calibrate``, ``export --dense`` and bench.
1. **soft** (LTP's soft mask): each layer's output, after its feed-forward and LayerNorm, is multiplied by
   ``sigmoid((s - thr_l) / T)``, ``s`` being that layer's LTP score with the constant ``n_ref`` normaliser; no
   token is dropped. The loss adds ``lambda * sum_l mean(mask_l)`` (mean over the batch and real positions), so
   the thresholds rise until dropping more would cost more task loss than it saves. Weights and thresholds train
   together; the thresholds have their own optimizer and learning rate.
2. **hard**: thresholds fixed, the weights are fine-tuned under the deployed rule (``PrunedClassifier(cfg, spec)``,
   whose gather is differentiable for the surviving tokens), so they adapt to really losing the dropped tokens.

Evaluation (after each stage, on the dev split) always uses the hard rule.

Example::

    report = train(TrainSettings(model="minilm/", task="sst2", output="runs/sst2-ltp"))
    report.final.value, report.final.flops_reduction      # e.g. 0.883, 1.8
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltp_deploy.calibration.evaluate import EncodedData, Evaluation, evaluate
from ltp_deploy.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ltp_deploy.data import Examples, encode, get_task, load_examples
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.flops import flops_reduction
from ltp_deploy.model import PrunedClassifier, token_scores
from ltp_deploy.packing import Padded
from ltp_deploy.outputs import check_output
from ltp_deploy.progress import progress_bar
from ltp_deploy.spec import PruningSpec

Log = Callable[[str], None]


@dataclass
class TrainSettings:
    """Everything ``ltp-deploy train`` takes; the defaults are the SST-2 / MiniLM recipe (reasons beside each)."""

    model: str | Path  # encoder-only folder (stage 0 runs) or a fine-tuned classifier (stage 0 skipped)
    task: str  # GLUE task, read from GLUE_DIR
    output: str | Path  # the learned-threshold checkpoint
    # Where the stage-0 dense model goes; default ``<output>-dense``. Unused when the model is already fine-tuned
    # (the input folder is then the dense baseline).
    dense_output: str | Path | None = None
    train_data: str | Path | None = None  # a task-layout train file instead of GLUE_DIR's train.tsv
    dev_data: str | Path | None = None  # a task-layout dev file instead of GLUE_DIR's dev.tsv

    max_length: int = 64  # SST-2 sentences are <= 66 tokens (dev max 55): nothing real is cut
    batch_size: int = 32
    seed: int = 0
    max_examples: int | None = None  # train on a random subset of this many examples (None: all)
    max_eval_examples: int | None = None  # evaluate on the first N dev examples (None: all)
    weight_decay: float = 0.01  # weights only; never the thresholds
    warmup: float = 0.06  # fraction of each stage's steps with a linear warm-up

    # Each stage runs --X-steps optimizer steps, or --X-epochs passes over the training data, or (neither given)
    # its default below. Soft and hard stages default to step counts: how far the thresholds move (threshold_lr x
    # steps) and how much the weights drift towards keeping more tokens in stage 2 do not depend on the data size.

    # Stage 0, dense fine-tuning; default 1 epoch (SST-2: 2,105 steps), the NOTICE recipe (88.8% on SST-2 dev).
    dense_epochs: float | None = None
    dense_steps: int | None = None
    dense_lr: float = 5e-5

    # Stage 1, soft thresholds; default 200 steps. LTP's values except lambda: weights and thresholds at 2e-5 (LTP's
    # threshold lr when none is given), T 1e-3 (code default), final 0.01, lambda 0.05 (README: 0.01..0.2).
    # Measured on SST-2 (MiniLM fine-tuned dense on all 67k sentences to 89.33%; stage 1 200 steps, stage 2 1000):
    # lambda 0.1 gave 1.74x FLOPs at -2.41 points (-2.52 with distillation); lambda 0.05 gave 1.62x at -1.26
    # points, and 1.64x at -0.69 with distillation (the defaults; the full default run: 88.65%, 1.66x, -0.69; with
    # the same settings and an earlier seeding, 88.30%, 1.65x, -1.03). With a 5x larger threshold lr the thresholds go
    # on rising to ~2.4x and the model loses 6 points.
    soft_epochs: float | None = None
    soft_steps: int | None = None
    soft_lr: float = 2e-5  # the weights
    threshold_lr: float = 2e-5  # the thresholds, their own AdamW (score units; the mean score is 1 / n_ref)
    lambda_: float = 0.05  # weight of sum_l mean(mask_l): larger keeps fewer tokens
    temperature: float = 1e-3  # sigmoid width T in score units (LTP searched 1e-4..2e-3)
    # Thresholds start at final_token_threshold * l / L (LTP's initialisation; 0 for layer 0).
    final_token_threshold: float = 0.01
    # Layer 0's threshold stays at 0 (prunes nothing), as in LTP. Layer-0 scores are nearly uniform (MiniLM on
    # SST-2: 10th..90th percentile 0.67..1.19 x the mean score), so they say little about importance; learned,
    # the threshold stayed at ~0.02 x the mean (drops nothing) yet would add a scoring + gather step to the graph.
    learn_first_layer: bool = False
    # Score normaliser: s_j = attention received / (heads * n_ref), a constant (never the padded length of a
    # batch). It is a unit: the soft mask and the hard rule see only s * n_ref against thr * n_ref and T * n_ref,
    # so any n_ref gives the same model once thresholds, T and threshold_lr are scaled by 128 / n_ref. 128, not
    # max_length 64, because the scores depend on the real lengths, not on padding: SST-2 sentences are the same
    # ~25 tokens that LTP padded to 128, so LTP's published T and final_token_threshold keep their meaning and the
    # thresholds compare with LTP checkpoints'.
    n_ref: int = 128

    # Stage 2, hard fine-tuning with the thresholds fixed; default 1000 steps (SST-2: about half an epoch).
    # Longer drifts the weights towards keeping more tokens (1.97x after stage 1 -> 1.81x after 200 steps ->
    # 1.75x after 600), for little accuracy.
    hard_epochs: float | None = None
    hard_steps: int | None = None
    hard_lr: float = 2e-5
    # Weight a of distillation in stage 2: loss = (1 - a) * task loss + a * distance to the dense model's outputs
    # (KL divergence of the softmax; squared error for regression). The teacher is the model as it was before
    # stage 1, in eval mode. 0 trains on the labels alone, as LTP does.
    distill: float = 0.5
    overwrite: bool = False  # replace existing outputs that ltp-deploy did not write

    def validate(self) -> None:
        """Check every option up front, before any data is read or any work starts."""
        get_task(self.task)
        positive = {"--batch-size": self.batch_size, "--max-length": self.max_length, "--n-ref": self.n_ref,
                    "--temperature": self.temperature}
        for name, value in positive.items():
            if not value > 0:
                raise LtpDeployError(f"{name} must be positive, got {value}: give a value above 0.")
        if self.max_length < 2:
            raise LtpDeployError(f"--max-length {self.max_length} is too small: use at least 2 (CLS and SEP).")
        for name, value in {"--max-examples": self.max_examples, "--max-eval-examples": self.max_eval_examples
                            }.items():
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
            if not (value >= 0 and math.isfinite(value)):
                raise LtpDeployError(f"{name} must be zero or more, got {value}: give a non-negative learning rate.")
        if not (self.lambda_ >= 0 and math.isfinite(self.lambda_)):
            raise LtpDeployError(f"--lambda must be zero or more, got {self.lambda_}: "
                                 "it weighs the kept-token penalty (LTP uses 0.01 to 0.2).")
        if not (self.final_token_threshold >= 0 and math.isfinite(self.final_token_threshold)):
            raise LtpDeployError(f"--final-token-threshold must be zero or more, got {self.final_token_threshold}: "
                                 "LTP uses 0.01 with n_ref 128.")
        if not 0 <= self.distill <= 1:
            raise LtpDeployError(f"--distill must be a weight in [0, 1], got {self.distill}: 0 turns it off.")
        if not 0 <= self.warmup < 1:
            raise LtpDeployError(f"--warmup must be a fraction in [0, 1), got {self.warmup}: 0.06 is usual.")
        check_output(self.output, "checkpoint", **self.output_rules)
        if self.dense_output is not None:  # asked for by name: checked now, even if stage 0 may not run
            self.check_dense_output()

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


# ----------------------------------------------------------------------------------------------- thresholds

class Thresholds(nn.Module):
    """LTP's learned thresholds: ``thr_l = final_token_threshold * l / L + delta_l``, one delta per layer.

    ``learned[l]`` is False for a layer whose threshold stays at its base value (layer 0 in LTP, base 0: that
    layer then prunes nothing and gets no soft mask).
    """

    def __init__(self, num_layers: int, final_token_threshold: float, learn_first_layer: bool):
        super().__init__()
        base = [final_token_threshold * i / num_layers for i in range(num_layers)]
        self.register_buffer("base", torch.tensor(base, dtype=torch.float32))
        self.register_buffer("learned", torch.tensor([learn_first_layer or i > 0 for i in range(num_layers)]))
        self.delta = nn.Parameter(torch.zeros(num_layers))

    def forward(self) -> torch.Tensor:  # (L,)
        return self.base + self.delta * self.learned

    def spec(self, n_ref: int, source: dict) -> PruningSpec:
        """The hard-rule spec; a threshold that ended at or below 0 becomes exactly 0 (that layer drops nothing)."""
        values = [max(0.0, float(v)) for v in self().detach()]
        return PruningSpec.threshold(values, n_ref=n_ref, source=source, reference_cls="kept")


def soft_forward(model: PrunedClassifier, thresholds: torch.Tensor, learned: torch.Tensor, input_ids,
                 attention_mask, token_type_ids, temperature: float, n_ref: int):
    """LTP's soft-mask forward, run on the model's own modules; no token is dropped.

    Args:
        model: a dense ``PrunedClassifier`` (its layers' pruners are not used).
        thresholds: (L,) current thresholds; ``learned``: (L,) bool, the layers that get a soft mask.
        input_ids, attention_mask, token_type_ids: (B, T) int64, right-padded.
        temperature: sigmoid width T, in score units.
        n_ref: the constant score normaliser.
    Returns:
        ``logits`` (B, C) and ``masks`` (B, L', T): the soft keep mask of each masked layer (CLS fixed at 1).
    """
    backbone = model.backbone
    alive = attention_mask.bool()  # (B, T): padding only; soft masking never removes a token
    layout = Padded(alive)  # every slot is a row, padding included
    x = backbone.embeddings(input_ids, token_type_ids).flatten(0, 1)[None]  # (1, B*T, D)
    is_cls = torch.arange(alive.shape[1], device=x.device) == 0  # (T,): kept by the deployed rule, never masked
    masks = []
    for i, layer in enumerate(backbone.encoder.layer):
        a, probs = layer.attention(x, layout)  # (1, B*T, D), (B, H, T, T)
        x = layer.output(layer.intermediate(a), a)  # (1, B*T, D)
        if learned[i]:
            s = token_scores(probs, alive, n_ref)  # (B, T)
            mask = torch.sigmoid((s - thresholds[i]) / temperature).masked_fill(is_cls, 1.0)  # (B, T)
            x = x * mask.reshape(1, -1, 1)
            masks.append(mask)
    masks = torch.stack(masks, dim=1) if masks else x.new_zeros(alive.shape[0], 0, alive.shape[1])
    return _head(model, layout.firsts(x)), masks


def _head(model: PrunedClassifier, cls):  # (B, D) -> (B, C), exactly as PrunedClassifier.forward
    if model.config.arch == "bert":
        return model.classifier(model.dropout(model.backbone.pooler(cls)))
    return model.classifier(cls)


def mask_penalty(masks, attention_mask):  # (B, L', T), (B, T) -> scalar
    """``sum over layers of mean(mask)``, the mean taken over the batch and real (unpadded) positions."""
    real = attention_mask.to(masks.dtype)[:, None, :]  # (B, 1, T)
    return ((masks * real).sum(dim=(0, 2)) / real.sum()).sum()


# ----------------------------------------------------------------------------------------------- data

@dataclass
class TrainData:
    """Training examples tokenised once; a batch is cut to its own longest row (per-batch padding)."""

    input_ids: torch.Tensor  # (N, T_max)
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor  # (N,) int64 class ids or float32 scores
    lengths: np.ndarray  # (N,)

    @classmethod
    def build(cls, tokenizer, examples: Examples, max_length: int) -> TrainData:
        enc = encode(tokenizer, examples, max_length)
        labels = torch.from_numpy(np.asarray(examples.labels))
        t = {k: torch.from_numpy(v) for k, v in enc.items()}
        return cls(t["input_ids"], t["attention_mask"], t["token_type_ids"], labels,
                   enc["attention_mask"].sum(axis=1))

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        width = int(self.lengths[idx].max())
        index = torch.from_numpy(idx)
        return {"input_ids": self.input_ids[index, :width], "attention_mask": self.attention_mask[index, :width],
                "token_type_ids": self.token_type_ids[index, :width], "labels": self.labels[index]}

    def stream(self, batch_size: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """Endless length-grouped batches, epoch after epoch."""
        while True:
            for idx in length_grouped_batches(self.lengths, batch_size, rng):
                yield self.batch(idx)


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           group: int = 50) -> list[np.ndarray]:
    """One epoch of batches of similar lengths: shuffle, sort within chunks of ``group`` batches, shuffle batches.

    Every example appears once; batches stay random in content and order, but padding nearly vanishes.
    """
    order = rng.permutation(len(lengths))
    chunk = batch_size * group
    out = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        out.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


DEFAULT_BUDGETS = {"dense": (1.0, None), "soft": (None, 200), "hard": (None, 1000)}  # (epochs, steps)


def stage_steps(n_examples: int, batch_size: int, epochs: float | None, steps: int | None,
                stage: str | None = None) -> int:
    """Optimizer steps of a stage: ``steps`` if given, else ``epochs`` passes over the data, else the stage's
    default (``DEFAULT_BUDGETS``). 0 skips the stage."""
    if steps is None and epochs is None and stage is not None:
        epochs, steps = DEFAULT_BUDGETS[stage]
    if steps is not None:
        return steps
    if epochs is None:
        raise ValueError("a stage needs steps, epochs or a stage name")
    return int(round(epochs * math.ceil(n_examples / batch_size)))


# ----------------------------------------------------------------------------------------------- the loop

def _adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the usual groups: no decay on biases and LayerNorm weights."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def _linear_schedule(optimizer, steps: int, warmup: float):
    warm = int(math.ceil(warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _task_loss(logits, labels, regression: bool):
    if regression:
        return nn.functional.mse_loss(logits[:, 0], labels.float())
    return nn.functional.cross_entropy(logits, labels)


def _optimise(name: str, steps: int, stream: Iterator[dict], step_loss: Callable[[dict], tuple[torch.Tensor, dict]],
              optimizers: list, clip_params: list, warmup: float) -> StageLog:
    """Run ``steps`` optimizer steps; ``step_loss(batch)`` returns the loss and scalars to log."""
    schedules = [_linear_schedule(opt, steps, warmup) for opt in optimizers]
    every = max(1, steps // 40)
    history, acc, count = [], {}, 0
    start = time.perf_counter()
    with progress_bar(total=steps, description=name) as advance:
        for step in range(steps):
            loss, extra = step_loss(next(stream))
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(clip_params, 1.0)
            for opt, sched in zip(optimizers, schedules):
                opt.step()
                sched.step()
            for key, value in {"loss": float(loss.detach()), **extra}.items():
                acc[key] = acc.get(key, 0.0) + np.asarray(value, dtype=np.float64)
            count += 1
            if count == every or step == steps - 1:
                history.append({"step": step + 1, **{k: (v / count).tolist() for k, v in acc.items()}})
                acc, count = {}, 0
                advance(0, f"{name} loss {history[-1]['loss']:.3f}")
            advance()
    return StageLog(name, steps, time.perf_counter() - start, history)


def fit_dense(model: PrunedClassifier, data: TrainData, steps: int, lr: float, settings: TrainSettings,
              regression: bool, rng: np.random.Generator) -> StageLog:
    """Stage 0: plain fine-tuning of encoder and head (no pruning)."""
    model.train()

    def step_loss(b):
        logits, _ = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        return _task_loss(logits, b["labels"], regression), {}

    return _optimise("dense", steps, data.stream(settings.batch_size, rng), step_loss,
                     [_adamw(model, lr, settings.weight_decay)], list(model.parameters()), settings.warmup)


def learn_thresholds(model: PrunedClassifier, thresholds: Thresholds, data: TrainData, steps: int,
                     settings: TrainSettings, regression: bool, rng: np.random.Generator) -> StageLog:
    """Stage 1: weights and thresholds under LTP's soft mask, loss = task + lambda * sum_l mean(mask_l)."""
    model.train()
    optimizers = [_adamw(model, settings.soft_lr, settings.weight_decay),
                  torch.optim.AdamW(thresholds.parameters(), lr=settings.threshold_lr, weight_decay=0.0)]

    def step_loss(b):
        logits, masks = soft_forward(model, thresholds(), thresholds.learned, b["input_ids"], b["attention_mask"],
                                     b["token_type_ids"], settings.temperature, settings.n_ref)
        task = _task_loss(logits, b["labels"], regression)
        penalty = mask_penalty(masks, b["attention_mask"])
        kept = penalty.detach() / max(1, masks.shape[1])
        return task + settings.lambda_ * penalty, {"task_loss": float(task.detach()), "soft_kept": float(kept),
                                                   "thresholds": thresholds().detach().numpy()}

    return _optimise("soft", steps, data.stream(settings.batch_size, rng), step_loss, optimizers,
                     list(model.parameters()), settings.warmup)


def _distill_loss(logits, teacher_logits, regression: bool):
    if regression:
        return nn.functional.mse_loss(logits, teacher_logits)
    return nn.functional.kl_div(logits.log_softmax(-1), teacher_logits.log_softmax(-1), log_target=True,
                                reduction="batchmean")


def fit_hard(model: PrunedClassifier, data: TrainData, steps: int, settings: TrainSettings, regression: bool,
             rng: np.random.Generator, teacher: PrunedClassifier | None = None) -> StageLog:
    """Stage 2: weights only, under the deployed hard rule of ``model.spec`` (tokens really dropped); with a
    ``teacher`` (the dense model) the loss mixes in ``settings.distill`` x the distance to its outputs."""
    model.train()
    weight = settings.distill if teacher is not None else 0.0

    def step_loss(b):
        inputs = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
        logits, kept = model(*inputs)
        reduction = flops_reduction(model.config, b["attention_mask"].sum(dim=1).numpy(), kept.numpy())
        task = _task_loss(logits, b["labels"], regression)
        if not weight:
            return task, {"flops_reduction": reduction}
        with torch.no_grad():
            teacher_logits, _ = teacher(*inputs)
        distill = _distill_loss(logits, teacher_logits, regression)
        return (1 - weight) * task + weight * distill, {"flops_reduction": reduction, "task_loss": float(task.detach()),
                                                        "distill_loss": float(distill.detach())}

    return _optimise("hard", steps, data.stream(settings.batch_size, rng), step_loss,
                     [_adamw(model, settings.hard_lr, settings.weight_decay)], list(model.parameters()),
                     settings.warmup)


# ----------------------------------------------------------------------------------------------- the command

def train(settings: TrainSettings, log: Log | None = None) -> TrainReport:
    """Run the three stages and write the checkpoints (each folder atomically).

    Args:
        settings: see ``TrainSettings``.
        log: called with one line per finished stage (the CLI prints them); None: silent.
    Returns:
        A ``TrainReport``; the pruned checkpoint is at ``report.output``, the dense one at ``report.dense_output``.
    Raises:
        LtpDeployError: bad options, missing data or GLUE_DIR, a model that does not fit the task.
    Example::

        train(TrainSettings("minilm/", "sst2", "runs/sst2-ltp", max_examples=512, dense_steps=40))
    """
    log = log or (lambda line: None)
    settings.validate()
    task = get_task(settings.task)
    train_ex = load_examples(settings.train_data, task.name, "train")
    dev_ex = load_examples(settings.dev_data, task.name, "dev")
    if not train_ex.has_labels or not dev_ex.has_labels:
        raise LtpDeployError("Training needs labelled train and dev data: give files with a label column.")
    if settings.max_examples is not None:
        train_ex = train_ex.subset(settings.max_examples, seed=settings.seed)
    if settings.max_eval_examples is not None:
        dev_ex = dev_ex.take(settings.max_eval_examples)
    ckpt = load_checkpoint(settings.model, dense=True)
    if ckpt.head_initialized:
        settings.check_dense_output()
    model, hf_config = _task_model(ckpt, train_ex)
    tokenizer = ckpt.tokenizer()
    regression = train_ex.is_regression
    length = min(settings.max_length, model.config.max_length)  # never past the position table
    data = TrainData.build(tokenizer, train_ex, length)
    dev = EncodedData.build(tokenizer, dev_ex, length)
    n, bs = len(data), settings.batch_size
    stages, started = [], time.perf_counter()
    base_meta = {"task": task.name, "source_model": str(Path(settings.model).resolve()),
                 "train_examples": n, "dev_examples": len(dev_ex), "settings": _settings_dict(settings),
                 "versions": library_versions()}

    dense_output, stage = None, None
    if ckpt.head_initialized:
        stage = fit_dense(model, data, stage_steps(n, bs, settings.dense_epochs, settings.dense_steps, "dense"),
                          settings.dense_lr, settings, regression, _stage_rng(settings.seed, 0))
        stages.append(stage)
    dense_eval = evaluate(model, dev)
    log(_stage_line("dense", stage, dense_eval, note="" if stage else "the input model, already fine-tuned"))
    if ckpt.head_initialized:
        dense_output = settings.dense_path
        meta = {**base_meta, "kind": "dense", "created": _now(), "dev": dense_eval.to_dict(),
                "stages": [_stage_dict(s) for s in stages]}
        save_checkpoint(model, dense_output, hf_config, tokenizer=tokenizer, metadata=meta,
                        inputs=(*settings.output_rules["inputs"], settings.output), overwrite=settings.overwrite)

    # Stage 1 trains the dense model's weights in place (the dense checkpoint is already written).
    teacher = None
    if settings.distill > 0:
        teacher = PrunedClassifier(model.config, None)
        teacher.load_state_dict(model.state_dict(), strict=True)
        teacher.eval().requires_grad_(False)
    thresholds = Thresholds(model.config.num_layers, settings.final_token_threshold, settings.learn_first_layer)
    soft_steps = stage_steps(n, bs, settings.soft_epochs, settings.soft_steps, "soft")
    stage = learn_thresholds(model, thresholds, data, soft_steps, settings, regression, _stage_rng(settings.seed, 1))
    stages.append(stage)
    source = {"method": "ltp-deploy train", "final_token_threshold": settings.final_token_threshold,
              "deltas": [float(d) for d in thresholds.delta.detach()], "lambda": settings.lambda_,
              "temperature": settings.temperature, "learn_first_layer": settings.learn_first_layer}
    spec = thresholds.spec(settings.n_ref, source)
    pruned = PrunedClassifier(model.config, spec)  # the deployed network: real dropping, differentiable gather
    pruned.load_state_dict(model.state_dict(), strict=True)
    soft_eval = evaluate(pruned, dev)
    log(_stage_line("soft", stage, soft_eval, spec))

    hard_steps = stage_steps(n, bs, settings.hard_epochs, settings.hard_steps, "hard")
    stage = (fit_hard(pruned, data, hard_steps, settings, regression, _stage_rng(settings.seed, 2), teacher)
             if hard_steps else None)
    stages += [stage] if stage else []
    final_eval = evaluate(pruned, dev)
    log(_stage_line("hard", stage, final_eval, spec))

    metadata = {
        **base_meta, "kind": "ltp", "created": _now(),
        "dev": final_eval.to_dict(),
        "dense": {"checkpoint": str(Path(dense_output or settings.model).resolve()), "dev": dense_eval.to_dict()},
        "after_soft_stage": soft_eval.to_dict(),
        "metric_drop_points": 100.0 * (dense_eval.value - final_eval.value),
        "thresholds": list(spec.thresholds), "n_ref": spec.n_ref,
        "stages": [_stage_dict(s) for s in stages],
        "train_seconds": time.perf_counter() - started,
    }
    out = save_checkpoint(pruned.eval(), settings.output, hf_config, tokenizer=tokenizer, metadata=metadata,
                          **settings.output_rules)
    return TrainReport(dense_eval, soft_eval, final_eval, spec, stages, out, dense_output, metadata)


def _stage_rng(seed: int, stage: int) -> np.random.Generator:
    """Seed torch and numpy per stage, so that training from a saved dense model repeats the full run's stages."""
    torch.manual_seed(seed * 3 + stage)
    return np.random.default_rng([seed, stage])


def _task_model(ckpt: Checkpoint, examples: Examples) -> tuple[PrunedClassifier, dict]:
    """The checkpoint's dense model with a head for the task: a fresh head of the right size for an encoder-only
    folder; a fine-tuned classifier must already have the task's number of outputs."""
    cfg = ckpt.config
    num_labels = 1 if examples.is_regression else len(examples.label_names or ()) or cfg.num_labels
    hf_config = dict(ckpt.hf_config)
    if not ckpt.head_initialized:
        if cfg.num_labels != num_labels:
            raise LtpDeployError(
                f"{ckpt.path} is a classifier with {cfg.num_labels} outputs but task {examples.task} needs "
                f"{num_labels}: fine-tune from the encoder, or pass a classifier trained for this task.")
        return ckpt.model, hf_config
    labels = None if examples.is_regression else tuple(examples.label_names or ()) or None
    new_cfg = replace(cfg, num_labels=num_labels, id2label=labels)
    for key in ("id2label", "label2id"):
        hf_config.pop(key, None)
    hf_config["num_labels"] = num_labels
    if examples.is_regression:
        hf_config["problem_type"] = "regression"
    model = PrunedClassifier(new_cfg)
    state = {k: v for k, v in ckpt.model.state_dict().items() if not k.startswith("classifier.")}
    generator = torch.Generator().manual_seed(0)  # the same seeded head init as load_checkpoint's
    for k, v in model.state_dict().items():
        if k.startswith("classifier."):
            state[k] = torch.empty_like(v).normal_(0.0, 0.02, generator=generator) if k.endswith("weight") \
                else torch.zeros_like(v)
    model.load_state_dict(state, strict=True)
    return model, hf_config


def _settings_dict(settings: TrainSettings) -> dict:
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    d["lambda"] = d.pop("lambda_")
    return d


def _stage_dict(stage: StageLog) -> dict:
    return {"name": stage.name, "steps": stage.steps, "seconds": round(stage.seconds, 2), "history": stage.history}


def _stage_line(name: str, stage: StageLog | None, ev: Evaluation, spec: PruningSpec | None = None,
                note: str = "") -> str:
    """One line per stage: what it did, then the dev metric, FLOPs reduction and kept tokens under the hard rule."""
    if stage is not None and stage.history:
        done = f"{stage.steps} steps in {stage.seconds:.0f} s, loss {stage.first_loss:.3f} -> {stage.last_loss:.3f}; "
    else:
        done = f"{note or 'skipped (0 steps)'}; "
    thr = f"; thresholds {', '.join(f'{t:.4f}' for t in spec.thresholds)}" if spec is not None else ""
    return (f"{name}: {done}dev {ev.metric} {100 * ev.value:.2f}, FLOPs reduction {ev.flops_reduction:.2f}x, "
            f"kept {', '.join(f'{k:.1f}' for k in ev.mean_kept)} of {ev.mean_length:.1f} tokens{thr}")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
