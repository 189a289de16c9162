"""``sweep``'s settings, validated (options, outputs, every training option) before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ltp_deploy.data import get_task
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.outputs import check_outputs
from ltp_deploy.calibration.families import FAMILY_MODES
from ltp_deploy.sweep.trained import target_folder, train_settings, validate_training


@dataclass
class SweepSettings:
    checkpoint: str | Path
    task: str
    json_out: str | Path
    plot_out: str | Path | None = None
    mode: str = "absolute_threshold"
    points: int = 8  # family points, the dense one included
    max_flops_reduction: float = 2.5  # thresholds: the strongest point reaches about this (if it can)
    min_keep_rate: float = 0.1  # top-k: the strongest point's token_keep_rate
    data: str | Path | None = None  # a task-layout file instead of GLUE_DIR's dev.tsv
    max_eval_examples: int | None = None
    max_length: int | None = None  # None: the task's (data.default_max_length)
    n_ref: int = 128
    overwrite: bool = False  # replace existing outputs that ltp-deploy did not write
    trained: Sequence[str | Path] = ()  # trained checkpoints to add as points (same architecture, with a spec)
    train_targets: Sequence[float] = ()  # FLOPs budgets to train to from ``checkpoint`` (needs ``train_dir``)
    train_dir: str | Path | None = None  # holds train_dir/target-<X>; an existing match is reused
    train_options: dict = field(default_factory=dict)  # other TrainSettings fields (e.g. soft_steps, max_examples)

    def validate(self) -> None:
        get_task(self.task)
        if self.mode not in FAMILY_MODES:
            raise LtpDeployError(f"Unknown --mode {self.mode!r}: use one of {', '.join(FAMILY_MODES)}.")
        if self.points < 2:
            raise LtpDeployError(f"--points must be at least 2 (the dense point and one pruned), got {self.points}.")
        if not self.max_flops_reduction > 1.0:
            raise LtpDeployError(f"--max-flops-reduction must be above 1.0, got {self.max_flops_reduction}: e.g. 3.")
        if not 0 < self.min_keep_rate < 1:
            raise LtpDeployError(f"--min-keep-rate must lie in (0, 1), got {self.min_keep_rate}: e.g. 0.1.")
        if self.max_eval_examples is not None and self.max_eval_examples < 1:
            raise LtpDeployError(f"--max-eval-examples must be at least 1, got {self.max_eval_examples}.")
        if self.plot_out is not None and Path(self.plot_out).suffix.lower() != ".png":
            raise LtpDeployError(f"Plot file {self.plot_out} must end in .png: name it, for example, sweep.png.")
        validate_training(self)
        trained_outputs = [(target_folder(self.train_dir, x), "checkpoint", "--train-dir") for x in self.train_targets]
        check_outputs([(self.json_out, "report", "--json"), (self.plot_out, "plot", "--plot"), *trained_outputs],
                      **self.output_rules)
        for x in self.train_targets:  # every training option, before any work
            train_settings(self, x).validate()

    @property
    def output_rules(self) -> dict:
        return {"inputs": (self.checkpoint, self.data, *self.trained), "overwrite": self.overwrite}
