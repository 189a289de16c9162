"""The export steps every target shares (``export_validated``) and the metadata every exporter writes.

Every exporter writes the same metadata (``ltp_deploy_export.json``) so that ``ltp_deploy.artifact`` opens any
target the same way for ``inspect``, ``bench``, ``check`` and the runtimes.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ltp_deploy.artifact import METADATA_FILE, OUTPUT_NAMES
from ltp_deploy.outputs import atomic_dir, write_json
from ltp_deploy.checkpoint import Checkpoint, save_tokenizer
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.progress import progress_bar
from ltp_deploy.spec import PruningSpec

FORMAT_VERSION = 1


def export_metadata(ckpt: Checkpoint, spec: PruningSpec | None, target: str, graph_file: str, **extra) -> dict:
    """The provenance block shared by every target; exporters add opset, precision and validation."""
    return {
        "format_version": FORMAT_VERSION,
        "target": target,
        "graph": graph_file,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {"path": str(ckpt.path), "format": ckpt.format,
                   "head": "untrained (encoder-only checkpoint)" if ckpt.head_initialized else "trained"},
        "config": asdict(ckpt.config),
        "spec": spec.to_dict() if spec else None,
        "weights_sha256": ckpt.model.weights_fingerprint(),
        "pruning": spec.mode if spec else "dense",
        "versions": library_versions(),
        **extra,
    }


@dataclass
class ExportResult:
    folder: Path
    graph: Path
    metadata: dict


class ExportValidationError(LtpDeployError):
    """The exported graph disagrees with the torch model beyond tolerance; nothing was written."""


def export_validated(ckpt: Checkpoint, out: str | Path, *, target: str, graph_file: str,
                     write_graph: Callable[[PrunedClassifier, Path, bool], dict], open_for_validation: Callable,
                     single_sequence: bool = False, batch1_file: str | None = None,
                     dense: bool = False, examples=None, atol: float = 1e-4, precision: str = "fp32",
                     tolerate_random_flips: bool = False, validation_notes: dict | None = None,
                     min_agreement: float | None = None,
                     overwrite: bool = False, inputs=()) -> ExportResult:
    """The steps every target shares: write the graph (and the batch-1 graph) into a temporary folder, save the
    tokenizer, validate each graph in its runtime against the torch model, compare with LTP's masked rule, write
    the metadata, and only then move the folder to ``out``.

    Args:
        write_graph: ``(model, path, single_sequence) -> dict`` writes the graph file ``path``, in the batch-1
            form (``SingleSequenceClassifier``) when ``single_sequence``; returns metadata (opset, exporter).
        open_for_validation: ``path -> Runtime`` that runs the graph with f32 arithmetic.
        single_sequence: ``graph_file`` is the batch-1 form (``export --single-sequence``).
        batch1_file: also write the batch-1 form to this file, which runtimes then run for batches of one
            (metadata ``batch1_graph``; its validation is ``batch1_validation``).
        validation_notes: recorded beside the validation results (e.g. the precision hint used).
        min_agreement: INT8 only: the prediction agreement the outcome gate asks for (default
            ``validate.INT8_MIN_AGREEMENT``).
        overwrite, inputs: the output rules (``outputs.check_output``); ``ckpt.path`` is always an input.
        (the rest as in ``export_onnx``)

    Raises:
        ExportValidationError: validation failed; ``out`` is left as it was.
    """
    from ltp_deploy.exporters.validate import (INT8_BATCH, INT8_MIN_AGREEMENT, reference_agreement, validate,
                                               validate_outcomes, validation_cases)

    if not (math.isfinite(atol) and atol >= 0):
        raise LtpDeployError(f"atol must be a finite number >= 0, got {atol}: e.g. --atol 1e-4.")
    if min_agreement is not None and (precision != "int8" or not 0 < min_agreement <= 1):
        raise LtpDeployError(f"--min-agreement {min_agreement} applies to INT8 exports and is a fraction in (0, 1]: "
                             "e.g. 0.99, or drop it.")
    if precision == "int8" and (examples is None or len(examples) == 0):
        raise LtpDeployError("An INT8 export is validated on real sentences: give --task TASK (its dev split) or "
                             "--data FILE.")
    rules = {"inputs": (ckpt.path, *inputs), "overwrite": overwrite}  # atomic_dir checks them before any write
    model = ckpt.model.with_spec(None) if dense else ckpt.model
    tokenizer = ckpt.tokenizer()
    files = {graph_file: single_sequence, **({batch1_file: True} if batch1_file else {})}
    with progress_bar(total=2 + len(files), description=f"export {target}") as advance, \
            atomic_dir(out, "export", **rules) as tmp:
        graph_meta = [write_graph(model, tmp / file, single) for file, single in files.items()][0]
        save_tokenizer(tokenizer, tmp)
        cases = validation_cases(tokenizer, model, examples)
        reports = {}
        for file in files:
            advance(description=f"validate {target} {file}")
            runtime = open_for_validation(tmp / file)
            if precision == "int8":  # gated on outcomes over the real sentences (validate.OutcomeReport)
                reports[file] = validate_outcomes(runtime, model, tokenizer, examples, atol,
                                                  min_agreement or INT8_MIN_AGREEMENT,
                                                  batch_size=1 if files[file] else INT8_BATCH)
            else:
                reports[file] = validate(runtime, model, cases, atol, tolerate_random_flips)
            del runtime  # release the graph file before the folder moves
        advance(description="compare with the masked rule")
        notes = validation_notes or {}
        batch1 = {"batch1_graph": batch1_file,
                  "batch1_validation": {**reports[batch1_file].to_dict(), **notes} if batch1_file else None}
        metadata = export_metadata(
            ckpt, model.spec, target, graph_file, inputs=list(model.config.input_names), outputs=list(OUTPUT_NAMES),
            precision=precision, **graph_meta, validation={**reports[graph_file].to_dict(), **notes}, **batch1,
            reference=reference_agreement(model, tokenizer, examples),
        )
        for file, report in reports.items():
            if not report.passed:
                raise ExportValidationError(
                    f"Exported graph {file} disagrees with the torch model in {report.runtime} "
                    f"({'; '.join(report.failures())}): nothing was written; "
                    + ("INT8 moved the outcomes too far: check the calibration data (OpenVINO), or export in fp32."
                       if precision == "int8" else
                       "report this with the checkpoint, or loosen --atol if the gap is numerical.")
                )
        write_json(tmp / METADATA_FILE, metadata)
        advance()
    return ExportResult(Path(out), Path(out) / graph_file, metadata)
