"""The training loops: one AdamW loop with linear warm-up and decay (``_optimise``) and the three stages on it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ltp_deploy.allocator import kept_freed_memory
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.flops import flops_reduction
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.progress import progress_bar
from ltp_deploy.training.batches import TrainData
from ltp_deploy.training.budget import BudgetController, Lagrangian
from ltp_deploy.training.settings import StageLog, TrainSettings
from ltp_deploy.training.soft import (LearnedScorers, Thresholds, final_importance, hard_flops_ratio, importance_loss,
                                      mask_penalty, soft_flops_ratio, soft_forward)
from ltp_deploy.training.teacher import TeacherMemo

# The options that set each stage's step sizes: what to lower when a stage diverges.
LEARNING_RATES = {"dense": "--dense-lr", "soft": "--soft-lr, --threshold-lr or --scorer-lr", "hard": "--hard-lr"}


class TrainingDiverged(LtpDeployError):
    """A stage's loss or weights turned NaN/inf: training stops there (``train`` then writes nothing more)."""

    def __init__(self, stage: str, step: int, steps: int, what: str):
        self.stage, self.step, self.steps, self.what = stage, step, steps, what
        super().__init__(f"Training diverged in the {stage} stage at step {step} of {steps} ({what}): lower "
                         f"{LEARNING_RATES.get(stage, 'the learning rate')} and train again.")


def refuse_non_finite_weights(stage: str, steps: int, modules: dict[str, nn.Module]) -> None:
    """Raise ``TrainingDiverged`` naming the first parameter of ``modules`` (a name prefix each) holding NaN/inf."""
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise TrainingDiverged(stage, steps, steps, f"the weight {prefix}{name} holds NaN/inf values")


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
              optimizers: list, clip_params: list, warmup: float, watched: dict[str, nn.Module]) -> StageLog:
    """Run ``steps`` optimizer steps; ``step_loss(batch)`` returns the loss and scalars to log.

    Raises:
        TrainingDiverged: a step's loss is NaN/inf (checked before its update), or a parameter of ``watched``
            (name prefix -> module) is at the end of the stage.
    """
    schedules = [_linear_schedule(opt, steps, warmup) for opt in optimizers]
    every = max(1, steps // 40)
    history, acc, count = [], {}, 0
    start = time.perf_counter()
    with progress_bar(total=steps, description=name) as advance, kept_freed_memory():
        for step in range(steps):
            loss, extra = step_loss(next(stream))
            if not bool(torch.isfinite(loss)):  # one scalar: cheap; stops before the update spreads it
                raise TrainingDiverged(name, step + 1, steps, f"the loss became {float(loss.detach())}")
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
    refuse_non_finite_weights(name, steps, watched)
    return StageLog(name, steps, time.perf_counter() - start, history)


def fit_dense(model: PrunedClassifier, data: TrainData, steps: int, lr: float, settings: TrainSettings,
              regression: bool, rng: np.random.Generator) -> StageLog:
    """Stage 0: plain fine-tuning of encoder and head (no pruning)."""
    settings = settings.resolved()
    model.train()

    def step_loss(b):
        logits, _ = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        return _task_loss(logits, b["labels"], regression), {}

    return _optimise("dense", steps, data.stream(settings.batch_size, rng), step_loss,
                     [_adamw(model, lr, settings.weight_decay)], list(model.parameters()), settings.warmup,
                     {"": model})


def learn_thresholds(model: PrunedClassifier, thresholds: Thresholds, data: TrainData, steps: int,
                     settings: TrainSettings, regression: bool, rng: np.random.Generator,
                     teacher: PrunedClassifier | None = None, scorers: LearnedScorers | None = None) -> StageLog:
    """Stage 1: weights and thresholds (and ``scorers``, at ``settings.scorer_lr``, for ``--scorer learned``) under
    the soft masks (``soft.soft_forward``). The loss is the task loss
    (mixed with distillation from ``teacher`` when ``settings.soft_distill``; plus ``settings.rank_distill`` x
    ``importance_loss`` against ``teacher``'s last layer, ToP's ranking distillation) plus, under a budget
    (``settings.budget``), the ``Lagrangian`` of the batch's FLOPs (``settings.budget_counts``), else LTP's
    ``lambda * sum_l mean(mask_l)``. T and the budget's target follow ``_soft_schedule``."""
    settings = settings.resolved()
    model.train()
    optimizers = [_adamw(model, settings.soft_lr, settings.weight_decay),
                  torch.optim.AdamW(thresholds.parameters(), lr=settings.threshold_lr, weight_decay=0.0)]
    if scorers is not None:
        optimizers.append(torch.optim.AdamW(scorers.parameters(), lr=settings.scorer_lr, weight_decay=0.0))
    lagrangian = Lagrangian(settings.budget) if settings.budget is not None else None
    if lagrangian is not None:
        optimizers.append(lagrangian.optimizer(settings.lagrangian_lr))
    counts = hard_flops_ratio if settings.budget_counts == "hard" else soft_flops_ratio
    weight = settings.distill if teacher is not None and settings.soft_distill else 0.0
    rank = settings.rank_distill if teacher is not None else 0.0
    memo = TeacherMemo(teacher, len(data)) if weight else None
    done = iter(range(steps))

    def step_loss(b):
        thresholds.clamp_()  # the projection after the previous step
        temperature, target = _soft_schedule(settings, next(done), steps)
        inputs = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
        scores = [] if rank else None
        logits, masks = soft_forward(model, thresholds(), thresholds.learned, *inputs, temperature, settings.n_ref,
                                     settings.masking, scorers, scores)
        task = _task_loss(logits, b["labels"], regression)
        penalty = mask_penalty(masks, b["attention_mask"])
        logged = {"task_loss": float(task.detach()), "soft_kept": float(penalty.detach()) / max(1, masks.shape[1]),
                  "thresholds": thresholds().detach().numpy()}
        if rank:
            ranking = importance_loss(scores, final_importance(teacher, *inputs, settings.n_ref), b["attention_mask"])
            logged["rank_loss"] = float(ranking.detach())
            task = task + rank * ranking
        if weight:
            _, teacher_logits = memo.outputs(b)
            distill = _distill_loss(logits, teacher_logits, regression)
            logged["distill_loss"] = float(distill.detach())
            task = (1 - weight) * task + weight * distill
        if lagrangian is None:
            return task + settings.lambda_ * penalty, logged
        lagrangian.target_ratio = 1.0 / target
        ratio = counts(model.config, masks, thresholds.learned, b["attention_mask"])
        logged.update(flops_reduction=1.0 / float(ratio.detach()), target=target,
                      multipliers=lagrangian.multipliers.detach().numpy().copy())
        return task + lagrangian(ratio), logged

    clipped = list(model.parameters()) + (list(scorers.parameters()) if scorers is not None else [])
    watched = {"": model, "thresholds.": thresholds, "scorers.": scorers, "lagrangian.": lagrangian}
    return _optimise("soft", steps, data.stream(settings.batch_size, rng), step_loss, optimizers, clipped,
                     settings.warmup, {k: m for k, m in watched.items() if m is not None})


def _soft_schedule(settings: TrainSettings, step: int, steps: int) -> tuple[float, float | None]:
    """Stage 1's T and budget target at ``step``: T shrinks geometrically from ``temperature`` to
    ``end_temperature``; the target (None without a budget) climbs linearly from 1x to the budget over the first
    ``budget_warmup`` of the steps (ToP's warm-up), then stays."""
    t0, t1 = settings.temperature, settings.end_temperature
    temperature = t0 * (t1 / t0) ** (step / max(1, steps - 1))
    if settings.budget is None:
        return temperature, None
    warm = settings.budget_warmup * steps
    progress = min(1.0, (step + 1) / warm) if warm else 1.0
    return temperature, 1.0 + (settings.budget - 1.0) * progress


def _distill_loss(logits, teacher_logits, regression: bool):
    if regression:
        return nn.functional.mse_loss(logits, teacher_logits)
    return nn.functional.kl_div(logits.log_softmax(-1), teacher_logits.log_softmax(-1), log_target=True,
                                reduction="batchmean")


def fit_hard(model: PrunedClassifier, data: TrainData, steps: int, settings: TrainSettings, regression: bool,
             rng: np.random.Generator, teacher: PrunedClassifier | None = None) -> StageLog:
    """Stage 2: weights only, under the deployed hard rule of ``model.spec`` (tokens really dropped); with a
    ``teacher`` (the dense model) the loss mixes in ``settings.distill`` x the distance to its outputs. Under a
    budget a ``BudgetController`` scales the thresholds after every step to hold it on the training batches."""
    settings = settings.resolved()
    model.train()
    weight = settings.distill if teacher is not None else 0.0
    hidden_weight = settings.distill_hidden if teacher is not None else 0.0
    controller = BudgetController(model, settings.budget) if settings.budget is not None else None
    memo = TeacherMemo(teacher, len(data)) if weight or hidden_weight else None

    def step_loss(b):
        inputs = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
        cls, kept = model.encode(*inputs)
        logits = model.head(cls)
        lengths = b["attention_mask"].sum(dim=1).numpy()
        logged = {"flops_reduction": flops_reduction(model.config, lengths, kept.numpy())}
        if controller is not None:
            logged["running_reduction"] = controller.update(lengths, kept.numpy())
            logged["threshold_scale"] = controller.scale
        task = _task_loss(logits, b["labels"], regression)
        if not (weight or hidden_weight):
            return task, logged
        teacher_cls, teacher_logits = memo.outputs(b)
        distill = _distill_loss(logits, teacher_logits, regression)
        hidden = nn.functional.mse_loss(cls, teacher_cls)
        logged.update(task_loss=float(task.detach()), distill_loss=float(distill.detach()),
                      hidden_loss=float(hidden.detach()))
        return (1 - weight) * task + weight * distill + hidden_weight * hidden, logged

    return _optimise("hard", steps, data.stream(settings.batch_size, rng), step_loss,
                     [_adamw(model, settings.hard_lr, settings.weight_decay)], list(model.parameters()),
                     settings.warmup, {"": model})
