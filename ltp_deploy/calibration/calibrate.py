"""``calibrate``: a pruned checkpoint from a fine-tuned one, with no training (the library behind the command).

Loads the checkpoint (its own spec ignored: the search starts from the dense model), searches the family of
``mode`` on a calibration slice of the training data, reports the dev metric and FLOPs reduction of the chosen
spec beside the dense model's, and writes a checkpoint folder whose weights are the input's, plus the spec.

Example::

    report = calibrate(CalibrateSettings("runs/sst2-dense", "sst2", "runs/sst2-cal16", target_flops_reduction=1.6))
    report.dev.flops_reduction, report.dev.value
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

from ltp_deploy.evaluation import EncodedData, Evaluation, evaluate
from ltp_deploy.calibration.search import TOLERANCE, SearchResult, check_goal, search
from ltp_deploy.checkpoint import load_checkpoint, save_checkpoint
from ltp_deploy.data import default_max_length, get_task, load_examples
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.outputs import check_output, reserved
from ltp_deploy.paths import refuse_symlink_loops
from ltp_deploy.calibration.families import FAMILY_MODES


@dataclass
class CalibrateSettings:
    checkpoint: str | Path  # a fine-tuned BERT/RoBERTa folder (HF or LTP layout)
    task: str
    output: str | Path
    target_flops_reduction: float | None = None
    max_metric_drop: float | None = None  # points: 100 x the primary metric (1.0 = one accuracy point)
    mode: str = "absolute_threshold"
    calibration_examples: int = 1000  # random train examples (seeded); the dev split is never searched on
    calibration_data: str | Path | None = None  # a task-layout file instead of GLUE_DIR's train.tsv
    dev_data: str | Path | None = None  # a task-layout file instead of GLUE_DIR's dev.tsv
    max_eval_examples: int | None = None  # first N dev examples (None: all)
    max_length: int | None = None  # None: the task's (data.default_max_length)
    n_ref: int = 128
    seed: int = 0
    tolerance: float = TOLERANCE
    overwrite: bool = False  # replace an existing output that ltp-deploy did not write

    @property
    def output_rules(self) -> dict:
        """What the output may not touch (``outputs.check_output``)."""
        return {"inputs": (self.checkpoint, self.calibration_data, self.dev_data), "overwrite": self.overwrite}

    def validate(self) -> None:
        get_task(self.task)
        check_goal(self.target_flops_reduction, self.max_metric_drop)
        if self.mode not in FAMILY_MODES:
            raise LtpDeployError(f"Unknown --mode {self.mode!r}: use one of {', '.join(FAMILY_MODES)}.")
        if self.calibration_examples < 1:
            raise LtpDeployError(f"--calibration-examples must be at least 1, got {self.calibration_examples}: "
                                 "1000 is a good default.")
        if self.max_eval_examples is not None and self.max_eval_examples < 1:
            raise LtpDeployError(f"--max-eval-examples must be at least 1, got {self.max_eval_examples}.")
        if (self.max_length is not None and self.max_length < 2) or self.n_ref < 1:
            raise LtpDeployError("--max-length must be at least 2 and --n-ref at least 1: fix the option.")
        refuse_symlink_loops([(self.checkpoint, "Checkpoint"), (self.calibration_data, "Data file"),
                              (self.dev_data, "Data file")])  # before the output rules resolve them
        check_output(self.output, "checkpoint", **self.output_rules)


@dataclass
class CalibrationReport:
    result: SearchResult
    dev: Evaluation
    dense_dev: Evaluation
    output: Path
    metadata: dict

    @property
    def dev_metric_drop_points(self) -> float:
        return 100.0 * (self.dense_dev.value - self.dev.value)


def calibrate(settings: CalibrateSettings) -> CalibrationReport:
    """Search, report on dev, write ``settings.output`` atomically (nothing is written on failure).

    Raises:
        LtpDeployError: bad options, missing data, an untrained head, an unreachable FLOPs target.
    """
    settings.validate()
    with reserved(settings.output):  # held from the start: a second run naming the same output is refused at once
        return _calibrate(settings)


def _calibrate(settings: CalibrateSettings) -> CalibrationReport:
    task = get_task(settings.task)
    ckpt = load_checkpoint(settings.checkpoint, dense=True)
    if ckpt.head_initialized:
        raise LtpDeployError(f"{ckpt.path} has no trained classification head: fine-tune it first "
                             "(ltp-deploy train) and calibrate the fine-tuned folder.")
    calib_ex = load_examples(settings.calibration_data, task.name, "train").subset(settings.calibration_examples,
                                                                                   seed=settings.seed)
    dev_ex = load_examples(settings.dev_data, task.name, "dev")
    if settings.max_eval_examples is not None:
        dev_ex = dev_ex.take(settings.max_eval_examples)
    if not calib_ex.has_labels or not dev_ex.has_labels:
        raise LtpDeployError("Calibration needs labelled data: give files with a label column.")
    tokenizer = ckpt.tokenizer()
    length = min(settings.max_length or default_max_length(settings.task), ckpt.config.max_length)
    calib = EncodedData.build(tokenizer, calib_ex, length)
    dev = EncodedData.build(tokenizer, dev_ex, length)

    result = search(ckpt.model, calib, settings.mode, settings.target_flops_reduction, settings.max_metric_drop,
                    n_ref=settings.n_ref, tolerance=settings.tolerance)
    pruned = ckpt.model.with_spec(result.spec)
    dev_eval, dense_dev = evaluate(pruned, dev), evaluate(ckpt.model, dev)
    metadata = {
        "kind": "calibrated", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": task.name, "source_checkpoint": str(Path(settings.checkpoint).resolve()),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
        "goal": result.goal, "met_on_calibration": result.met,
        "family": {"mode": result.family.mode, result.family.parameter: result.value},
        "calibration": {"examples": len(calib_ex), "pruned": result.calibration.to_dict(),
                        "dense": result.dense_calibration.to_dict(),
                        "metric_drop_points": result.metric_drop_points,
                        "trials": [t.to_dict(result.family) for t in result.trials]},
        "dev": dev_eval.to_dict(),
        "dense": {"checkpoint": str(Path(settings.checkpoint).resolve()), "dev": dense_dev.to_dict()},
        "metric_drop_points": 100.0 * (dense_dev.value - dev_eval.value),
        "versions": library_versions(),
    }
    out = save_checkpoint(pruned.eval(), settings.output, ckpt.hf_config, tokenizer=tokenizer, metadata=metadata,
                          **settings.output_rules)
    return CalibrationReport(result, dev_eval, dense_dev, out, metadata)
