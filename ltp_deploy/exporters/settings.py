"""``ExportSettings``: one export, every option checked when it is built, before the checkpoint loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.exporters import TARGETS, WEIGHT_PRECISIONS

# Target-only fields: the sentence refusing each for another target ({owners}: "--target onnx", {target}: the other)
_TARGET_ONLY = {
    "opset": "--opset applies to {owners} only: drop --opset for {target}.",
    "int8_activations": "--int8-activations applies to --precision int8 {owners} (OpenVINO's INT8 is always "
                        "calibrated): drop it, or add those options.",
}


@dataclass(frozen=True)
class ExportSettings:
    """One ``ltp-deploy export``; the fields are its options (``ltp-deploy export --help``).

    Raises (when built):
        LtpDeployError: an unknown target or precision, an option the target or precision does not take, or
            contradicting options; one sentence naming the fix.
    """

    checkpoint: Path
    output: Path
    target: str = "onnx"
    precision: str = "fp32"  # weight precision: fp32, fp16 (openvino), int8
    dense: bool = False
    spec: Path | None = None  # a pruning_spec.json (or its folder) instead of the checkpoint's own
    single_sequence: bool = False
    batch1_graph: bool = True
    data: Path | None = None
    task: str | None = None
    text_column: str | int | None = None
    text_pair_column: str | int | None = None
    max_examples: int | None = None  # validation sentences (default 64; INT8 1000)
    atol: float | None = None
    opset: int | None = None
    overwrite: bool = False
    # INT8 only (``exporters.int8.Int8Options``)
    max_metric_drop: float | None = None
    min_agreement: float | None = None
    int8_scope: str | None = None
    int8_activations: str | None = None
    calibration_data: Path | None = None

    def __post_init__(self) -> None:
        for name in ("checkpoint", "output", "spec", "data", "calibration_data"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        _check(self)

    @property
    def output_rules(self) -> dict:
        """``outputs.check_output``'s rules: the inputs the output may not overwrite, and --overwrite."""
        return {"inputs": (self.checkpoint, self.spec, self.data, self.calibration_data), "overwrite": self.overwrite}


def _check(s: ExportSettings) -> None:
    if s.target not in TARGETS:
        raise LtpDeployError(f"Unknown target {s.target!r}: use one of {', '.join(TARGETS)}.")
    if s.precision not in WEIGHT_PRECISIONS:
        raise LtpDeployError(f"Unknown precision {s.precision!r}: use one of {', '.join(WEIGHT_PRECISIONS)}.")
    target = TARGETS[s.target]
    if s.precision not in target.precisions:
        others = [t for t in TARGETS.values() if s.precision in t.precisions]
        raise LtpDeployError(f"--precision {s.precision} is an {' or '.join(t.label for t in others)} option, not "
                             f"{s.target}: add --target {others[0].name} or drop --precision.")
    int8_given = {"--int8-scope": s.int8_scope, "--min-agreement": s.min_agreement,
                  "--max-metric-drop": s.max_metric_drop, "--int8-activations": s.int8_activations,
                  "--calibration-data": s.calibration_data}
    for name, value in int8_given.items():
        if value is not None and s.precision != "int8":
            raise LtpDeployError(f"{name} applies to --precision int8: add it or drop {name}.")
    for field, sentence in _TARGET_ONLY.items():
        if getattr(s, field) is not None and field not in target.options:
            owners = " or ".join(f"--target {t.name}" for t in TARGETS.values() if field in t.options)
            raise LtpDeployError(sentence.format(owners=owners, target=s.target))
    if s.calibration_data is not None and s.int8_activations == "dynamic":
        raise LtpDeployError("--calibration-data is for static INT8 (dynamic INT8 needs no calibration): drop it, "
                             "or drop --int8-activations dynamic.")
    if s.spec is not None and s.dense:
        raise LtpDeployError("--spec and --dense contradict each other: drop one of them.")
    if s.max_examples is not None and s.max_examples < 1:
        raise LtpDeployError(f"--max-examples must be at least 1, got {s.max_examples}.")
