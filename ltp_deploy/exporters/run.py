"""``run_export``: load the checkpoint and the validation (and calibration) sentences, export, validate, write."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ltp_deploy.exporters import TARGETS
from ltp_deploy.exporters.settings import ExportSettings

if TYPE_CHECKING:
    from ltp_deploy.exporters.steps import ExportResult

DEFAULT_SENTENCES = 64  # validation sentences of an fp32/fp16 export (INT8: validate.INT8_SENTENCES)


def run_export(s: ExportSettings) -> ExportResult:
    """Export ``s.checkpoint`` to ``s.output`` for ``s.target``, validated against torch; nothing is written unless
    the graph passes.

    Raises:
        LtpDeployError: unreadable checkpoint or data, an output that may not be written, missing calibration
            data, or a graph that fails its validation (``ExportValidationError``).
    """
    from ltp_deploy.checkpoint import load_checkpoint
    from ltp_deploy.data import load_examples
    from ltp_deploy.exporters.int8 import Int8Options
    from ltp_deploy.exporters.validate import INT8_MAX_METRIC_DROP, INT8_SENTENCES
    from ltp_deploy.outputs import check_output
    from ltp_deploy.paths import refuse_symlink_loops
    from ltp_deploy.spec import PruningSpec

    refuse_symlink_loops([(s.checkpoint, "Checkpoint"), (s.spec, "Spec file"), (s.data, "Data file"),
                          (s.calibration_data, "Data file")])  # named before the output rules resolve them
    check_output(s.output, "export", **s.output_rules)
    int8, atol = None, s.atol
    if s.precision == "int8":
        int8 = Int8Options(scope=s.int8_scope or "auto", activations=s.int8_activations or "static",
                           max_metric_drop=INT8_MAX_METRIC_DROP if s.max_metric_drop is None else s.max_metric_drop,
                           min_agreement=s.min_agreement, atol=s.atol)
        calibration, note = _calibration(int8.static(s.target), s)
        int8 = replace(int8, calibration=calibration, calibration_note=note).checked(s.target, None)
        atol = None
    ckpt = load_checkpoint(s.checkpoint, spec=PruningSpec.read(s.spec) if s.spec else None, dense=s.dense)
    examples = None
    if s.data or s.task:
        examples = load_examples(s.data, s.task, text_column=s.text_column, text_pair_column=s.text_pair_column)
        examples = examples.take(s.max_examples or (INT8_SENTENCES if s.precision == "int8" else DEFAULT_SENTENCES))
    target = TARGETS[s.target]
    # the target's own exporter options (int8_activations went into ``int8`` above)
    only = {field: getattr(s, field) for field in target.options if field != "int8_activations"}
    return target.export(ckpt, s.output, dense=s.dense, examples=examples, atol=atol, precision=s.precision,
                         single_sequence=s.single_sequence, batch1_graph=s.batch1_graph, int8=int8, **only,
                         **s.output_rules)


def _calibration(static: bool, s: ExportSettings):
    """Calibration sentences of static INT8 (OpenVINO's, and ONNX Runtime's unless its activations are dynamic):
    ``CALIBRATION_ROWS`` seeded rows of the given file or of the task's train split (never dev), and the note the
    metadata records; (None, None) when nothing is calibrated."""
    from ltp_deploy.data import load_examples
    from ltp_deploy.exporters.int8 import CALIBRATION_ROWS, CALIBRATION_SEED, missing_calibration

    if not static:
        return None, None
    if s.calibration_data is None and s.task is None:
        raise missing_calibration("Static INT8 (OpenVINO's, and ONNX Runtime's unless --int8-activations dynamic)")
    split = "train" if s.calibration_data is None else "given file"
    pool = load_examples(s.calibration_data, s.task, "train", text_column=s.text_column,
                         text_pair_column=s.text_pair_column)
    note = {"split": split, "seed": CALIBRATION_SEED, "drawn_from": len(pool)}
    return pool.subset(CALIBRATION_ROWS, seed=CALIBRATION_SEED), note


__all__ = ["run_export"]
