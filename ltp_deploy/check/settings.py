"""``check``'s settings: every option validated when ``CheckSettings`` is built, before anything loads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.paths import refuse_symlink_loops
from ltp_deploy.runtimes import COMPUTE_PRECISIONS, GRAPH_BACKENDS

SCHEMA_VERSION = 1
KIND = "ltp-deploy-check"
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_DECISION_MISMATCH = 0.01  # applied whenever a reference is given
GATES = ("min-metric", "max-drop", "max-decision-mismatch")
PRECISIONS = COMPUTE_PRECISIONS  # a graph runs on onnxruntime or openvino: their compute precisions


@dataclass(frozen=True)
class CheckSettings:
    """One check; every option is validated when the settings are built, before anything loads."""

    model: Path  # an export folder or the graph file inside it
    task: str | None = None  # task: columns, labels and metrics; with data=None its dev split is used
    data: str | None = None  # a .tsv/.csv/.jsonl file (or hub:NAME) instead of the GLUE dev split
    text_column: str | int | None = None
    text_pair_column: str | int | None = None
    label_column: str | int | None = None  # default "label" for a file without --task
    reference: Path | None = None  # the checkpoint folder the graph should match
    metric: str | None = None  # the metric the gates use; default the task's primary metric
    min_metric: float | None = None
    max_drop: float | None = None
    max_decision_mismatch: float | None = None  # None: DEFAULT_MAX_DECISION_MISMATCH when a reference is given
    device: str = "cpu"
    backend: str | None = None
    precision: str = "fp32"  # OpenVINO: f32 unless bf16 is asked for (bf16 flips decisions near thresholds)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_examples: int | None = None
    max_length: int | None = None  # None: the graph's maximum, capped at the task's (data.default_max_length)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))
        if self.reference is not None:
            object.__setattr__(self, "reference", Path(self.reference))
        _check_settings(self)

    @property
    def decision_bound(self) -> float | None:
        """The max-decision-mismatch bound in force (the default applies whenever a reference is given)."""
        if self.max_decision_mismatch is not None:
            return self.max_decision_mismatch
        return DEFAULT_MAX_DECISION_MISMATCH if self.reference is not None else None


def _check_settings(s: CheckSettings) -> None:
    from ltp_deploy.runtimes import DEVICES

    if s.task is None and s.data is None:
        raise LtpDeployError("No evaluation data given: pass --task (its GLUE dev split from GLUE_DIR) or --data FILE.")
    if s.device.split(":")[0] not in DEVICES:
        raise LtpDeployError(f"Unknown device {s.device!r}: use cpu or cuda (cuda:N for another GPU).")
    if s.backend is not None and s.backend not in GRAPH_BACKENDS:
        raise LtpDeployError(f"Backend {s.backend!r} cannot run an exported graph: use {' or '.join(GRAPH_BACKENDS)} "
                             "(the torch reference runs through --reference).")
    if s.precision not in PRECISIONS:
        raise LtpDeployError(f"Unknown precision {s.precision!r}: use fp32 (default) or, with openvino, bf16.")
    if s.batch_size < 1:
        raise LtpDeployError(f"--batch-size must be at least 1, got {s.batch_size}.")
    if s.max_examples is not None and s.max_examples < 1:
        raise LtpDeployError(f"--max-examples must be at least 1, got {s.max_examples}.")
    if s.max_length is not None and s.max_length < 2:
        raise LtpDeployError(f"--max-length must be at least 2 tokens, got {s.max_length}.")
    if s.min_metric is not None and not math.isfinite(s.min_metric):
        raise LtpDeployError(f"--min-metric must be a finite number, got {s.min_metric}.")
    for name, value in (("--max-drop", s.max_drop), ("--max-decision-mismatch", s.max_decision_mismatch)):
        if value is None:
            continue
        if s.reference is None:
            raise LtpDeployError(f"{name} compares the graph with its checkpoint: add --reference CKPT "
                                 f"(the checkpoint folder it was exported from) or drop {name}.")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            what = "metric points as a fraction (0.01 = 1 point)" if name == "--max-drop" else "a fraction of sequences"
            raise LtpDeployError(f"{name} must lie in [0, 1], {what}; got {value}.")
    refuse_symlink_loops([(s.model, "Model"), (s.reference, "Reference checkpoint"), (s.data, "Data file")])
    if not s.model.exists():
        raise LtpDeployError(f"Model {s.model} does not exist: pass an export folder or its .onnx/.xml graph.")
    if s.reference is not None and not s.reference.exists():
        raise LtpDeployError(f"Reference checkpoint {s.reference} does not exist: pass the checkpoint folder the "
                             "graph was exported from.")

