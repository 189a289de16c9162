"""The trained points of ``sweep``: checkpoints trained to a FLOPs budget, evaluated beside the training-free family.

Two sources, both evaluated on the sweep's dev data with their own weights and learned spec:

* ``--trained CKPT`` (``SweepSettings.trained``): a folder ``ltp-deploy train`` wrote, or any checkpoint with a
  pruning spec and the dense checkpoint's architecture (its ``EncoderConfig``, dropout aside); anything else is
  refused before any work (``load_trained``).
* ``--train-targets X,... --train-dir DIR``: ``ltp_deploy.training.train`` from the dense checkpoint (a fine-tuned
  classifier, so stage 0 is skipped) to each budget X, into ``DIR/target-<X>`` (X written as ``%g``: ``target-2``,
  ``target-2.5``). A folder whose ``ltp_deploy.json`` says it was trained to X on the task from that same dense
  checkpoint is reused, not trained again (``reusable``), so an interrupted sweep resumes where it stopped.

Example::

    runs = train_targets(settings, log=print)          # [(DIR/target-2, "trained"), (DIR/target-2.5, "reused")]
    ckpt = load_trained(runs[0][0], load_checkpoint(settings.checkpoint))
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ltp_deploy.checkpoint import METADATA_FILE, Checkpoint, load_checkpoint
from ltp_deploy.errors import LtpDeployError

if TYPE_CHECKING:
    from ltp_deploy.sweep.settings import SweepSettings
    from ltp_deploy.training import TrainSettings

# TrainSettings fields the sweep sets itself (``train_options`` may set any other field).
SWEEP_SET = ("model", "task", "output", "dense_output", "target_flops_reduction", "lambda_", "dev_data",
             "max_eval_examples", "max_length", "overwrite")
_IGNORED_CONFIG = ("hidden_dropout_prob",)  # used only while training


def target_folder(train_dir: str | Path, target: float) -> Path:
    """Where the checkpoint trained to ``target`` goes: ``DIR/target-2``, ``DIR/target-2.5``."""
    return Path(train_dir) / f"target-{target:g}"


def validate_training(settings: SweepSettings) -> None:
    """Check ``--train-targets``/``--train-dir`` and the training options' names up front (no work done); the
    options' values are ``train_settings(...).validate()``'s to check, once the outputs are."""
    targets, train_dir = list(settings.train_targets), settings.train_dir
    if train_dir is not None and not targets:
        raise LtpDeployError("--train-dir given without --train-targets: add the budgets to train to, "
                             "e.g. --train-targets 2.0,2.5,3.0.")
    if not targets:
        return
    if train_dir is None:
        raise LtpDeployError("--train-targets needs --train-dir: name the folder that keeps the trained "
                             "checkpoints, e.g. --train-dir runs/sweep-trained.")
    for x in targets:
        if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 1):
            raise LtpDeployError(f"--train-targets must be FLOPs reductions above 1, got {x}: e.g. 2.0,2.5,3.0.")
    names = [target_folder(train_dir, x).name for x in targets]
    if len(set(names)) != len(names):
        raise LtpDeployError(f"--train-targets lists a budget twice ({', '.join(names)}): give each budget once.")
    fields = {f.name for f in dataclasses.fields(_train_settings_class())}
    unknown = sorted(set(settings.train_options) - (fields - set(SWEEP_SET)))
    if unknown:
        raise LtpDeployError(f"Unknown or sweep-set training options {', '.join(unknown)}: use TrainSettings "
                             f"fields other than {', '.join(SWEEP_SET)}.")


def train_settings(settings: SweepSettings, target: float) -> TrainSettings:
    """The ``TrainSettings`` of one target: the sweep's dense checkpoint, task, dev data and length."""
    return _train_settings_class()(
        model=settings.checkpoint, task=settings.task, output=target_folder(settings.train_dir, target),
        target_flops_reduction=target, dev_data=settings.data, max_eval_examples=settings.max_eval_examples,
        max_length=settings.max_length, overwrite=settings.overwrite, **settings.train_options)


def train_targets(settings: SweepSettings, log: Callable[[str], None]) -> list[tuple[Path, str]]:
    """Train (or reuse) one checkpoint per target; return ``(folder, "trained" | "reused")`` in target order."""
    from ltp_deploy.training import train

    runs = []
    for x in settings.train_targets:
        folder = target_folder(settings.train_dir, x)
        if reusable(folder, settings.checkpoint, settings.task, x):
            log(f"target {x:g}x: reusing {folder} (trained to {x:g}x from {settings.checkpoint})")
            runs.append((folder, "reused"))
            continue
        log(f"target {x:g}x: training into {folder}")
        train(train_settings(settings, x), log=lambda line, x=x: log(f"target {x:g}x: {line}"))
        runs.append((folder, "trained"))
    return runs


def reusable(folder: str | Path, dense: str | Path, task: str, target: float) -> bool:
    """Whether ``folder`` already holds a checkpoint trained to ``target`` on ``task`` from ``dense``."""
    meta_file = Path(folder) / METADATA_FILE
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("kind") != "ltp" or meta.get("task") != _task_name(task):
        return False
    source, budget = meta.get("source_model"), budget_of(meta)
    return (isinstance(source, str) and Path(source).resolve() == Path(dense).resolve()
            and budget is not None and math.isclose(budget, target, rel_tol=1e-9))


def budget_of(metadata: dict) -> float | None:
    """The FLOPs reduction a checkpoint was trained to, from its ``ltp_deploy.json`` (None: not recorded)."""
    settings = metadata.get("settings")
    if isinstance(settings, dict) and isinstance(settings.get("target_flops_reduction"), (int, float)):
        return float(settings["target_flops_reduction"])
    budget = metadata.get("budget")
    if isinstance(budget, dict) and isinstance(budget.get("target"), (int, float)):
        return float(budget["target"])
    return None


def load_trained(path: str | Path, dense: Checkpoint) -> Checkpoint:
    """Load a trained checkpoint; refuse one without a pruning spec or a trained head, or of another architecture."""
    ckpt = load_checkpoint(path)
    if ckpt.spec is None:
        raise LtpDeployError(f"--trained {path} has no pruning spec: give a checkpoint that ltp-deploy train "
                             "wrote (or one with a pruning_spec.json).")
    if ckpt.head_initialized:
        raise LtpDeployError(f"--trained {path} has no trained classification head: give a checkpoint that "
                             "ltp-deploy train wrote.")
    differences = config_differences(dense, ckpt)
    if differences:
        raise LtpDeployError(f"--trained {path} is not the architecture of the dense checkpoint {dense.path} "
                             f"({'; '.join(differences)}): give a checkpoint trained from that dense model.")
    return ckpt


def config_differences(dense: Checkpoint, other: Checkpoint) -> list[str]:
    """``["num_layers 2, not 4", ...]``: the architecture fields in which ``other`` differs from ``dense``."""
    a, b = dataclasses.asdict(dense.config), dataclasses.asdict(other.config)
    return [f"{k} {b[k]!r}, not {a[k]!r}" for k in a if k not in _IGNORED_CONFIG and a[k] != b[k]]


def _task_name(task: str) -> str:
    from ltp_deploy.data import get_task

    return get_task(task).name


def _train_settings_class():
    from ltp_deploy.training import TrainSettings

    return TrainSettings
