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
from ltp_deploy.checkpoint import Checkpoint
from ltp_deploy.tokenizer import save_tokenizer
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
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
                     write_graph: Callable[..., dict], open_for_validation: Callable,
                     single_sequence: bool = False, batch1_file: str | None = None,
                     dense: bool = False, examples=None, atol: float = 1e-4, precision: str = "fp32",
                     tolerate_random_flips: bool = False, validation_notes: dict | None = None,
                     int8=None, overwrite: bool = False, inputs=()) -> ExportResult:
    """The steps every target shares: write the graph (and the batch-1 graph) into a temporary folder, save the
    tokenizer, validate each graph in its runtime against the torch model, compare with LTP's masked rule, write
    the metadata, and only then move the folder to ``out``.

    Args:
        write_graph: ``(model, path, single_sequence, scope) -> dict`` writes the graph file ``path``, in the
            batch-1 form (``SingleSequenceClassifier``) when ``single_sequence``, quantized with INT8 scope
            ``scope`` (None unless INT8); returns metadata (opset, exporter, quantization).
        open_for_validation: ``path -> Runtime`` that runs the graph with f32 arithmetic.
        single_sequence: ``graph_file`` is the batch-1 form (``export --single-sequence``).
        batch1_file: also write the batch-1 form to this file, which runtimes then run for batches of one
            (metadata ``batch1_graph``; its validation is ``batch1_validation``).
        validation_notes: recorded beside the validation results (e.g. the precision hint used).
        int8: ``exporters.int8.Int8Options`` of an INT8 export (required then): each scope of its
            ``scope_trials`` is written and gated on outcomes (``validate.OutcomeReport``) until one passes; every
            trial is recorded under ``quantization.trials``.
        overwrite, inputs: the output rules (``outputs.check_output``); ``ckpt.path`` is always an input.
        (the rest as in ``export_onnx``)

    Raises:
        ExportValidationError: validation failed; ``out`` is left as it was.
    """
    from ltp_deploy.exporters.int8 import scope_trials
    from ltp_deploy.exporters.validate import reference_agreement

    if not (math.isfinite(atol) and atol >= 0):
        raise LtpDeployError(f"atol must be a finite number >= 0, got {atol}: e.g. --atol 1e-4.")
    if precision == "int8" and (examples is None or len(examples) == 0):
        raise LtpDeployError("An INT8 export is validated on real sentences: give --task TASK (its dev split) or "
                             "--data FILE.")
    if precision == "int8" and examples.labels is None and int8.min_agreement is None:
        raise LtpDeployError("An INT8 export is gated on its task metric, and these sentences have no labels: give "
                             "--task TASK or a label column, or gate on agreement with --min-agreement 0.99.")
    rules = {"inputs": (ckpt.path, *inputs), "overwrite": overwrite}  # atomic_dir checks them before any write
    model = ckpt.model.with_spec(None) if dense else ckpt.model
    tokenizer = ckpt.tokenizer()
    files = {graph_file: single_sequence, **({batch1_file: True} if batch1_file else {})}
    scopes = scope_trials(int8.scope, model.spec) if precision == "int8" else (None,)
    with progress_bar(total=2 + (1 + len(files)) * len(scopes), description=f"export {target}") as advance, \
            atomic_dir(out, "export", **rules) as tmp:
        save_tokenizer(tokenizer, tmp)
        trials = []
        for scope in scopes:
            graph_meta = [write_graph(model, tmp / file, single, scope) for file, single in files.items()][0]
            advance()
            reports = _validate_files(tmp, files, open_for_validation, model, tokenizer, examples, atol,
                                      tolerate_random_flips, int8, advance, target)
            if scope is not None:
                trials.append({"scope": scope, "passed": all(r.passed for r in reports.values()),
                               **{f"{f}": r.to_dict() for f, r in reports.items()}})
            if all(r.passed for r in reports.values()):
                break
        if trials:
            graph_meta["quantization"] = {**graph_meta["quantization"], "requested_scope": int8.scope,
                                          "trials": [_trial_summary(t, files) for t in trials]}
        advance(description="compare with the masked rule")
        notes = validation_notes or {}
        batch1 = {"batch1_graph": batch1_file,
                  "batch1_validation": {**reports[batch1_file].to_dict(), **notes} if batch1_file else None}
        metadata = export_metadata(
            ckpt, model.spec, target, graph_file, inputs=list(model.config.input_names), outputs=list(OUTPUT_NAMES),
            precision=precision, **graph_meta, validation={**reports[graph_file].to_dict(), **notes}, **batch1,
            reference=reference_agreement(model, tokenizer, examples),
        )
        _refuse_failures(reports, precision, scopes)
        write_json(tmp / METADATA_FILE, metadata)
        advance()
    return ExportResult(Path(out), Path(out) / graph_file, metadata)


def _refuse_failures(reports: dict, precision: str, scopes: tuple) -> None:
    """Raise ``ExportValidationError`` (one sentence) for the first graph that failed its validation."""
    for file, report in reports.items():
        if not report.passed:
            tried = f" (tried --int8-scope {', '.join(scopes)})" if len(scopes) > 1 else ""
            raise ExportValidationError(
                f"Exported graph {file} disagrees with the torch model in {report.runtime} "
                f"({'; '.join(report.failures())}){tried}: nothing was written; "
                + ("INT8 moved the outcomes too far: check the calibration data, loosen --max-metric-drop, or "
                   "export in fp32." if precision == "int8" else
                   "report this with the checkpoint, or loosen --atol if the gap is numerical.")
            )


def _validate_files(folder: Path, files: dict[str, bool], open_for_validation, model, tokenizer, examples, atol,
                    tolerate_random_flips, int8, advance, target) -> dict:
    """Each written graph validated in its runtime: INT8 on outcomes over the real sentences (the batched graph
    at ``INT8_BATCH``, the batch-1 graph one sentence at a time), others case by case."""
    from ltp_deploy.exporters.validate import INT8_BATCH, validate, validate_outcomes, validation_cases

    cases = None if int8 else validation_cases(tokenizer, model, examples)
    reports = {}
    for file, single in files.items():
        advance(description=f"validate {target} {file}")
        runtime = open_for_validation(folder / file)
        if int8:
            reports[file] = validate_outcomes(runtime, model, tokenizer, examples, int8.max_metric_drop,
                                              int8.min_agreement, int8.atol, batch_size=1 if single else INT8_BATCH)
        else:
            reports[file] = validate(runtime, model, cases, atol, tolerate_random_flips)
        del runtime  # release the graph file before the folder moves
    return reports


def _trial_summary(trial: dict, files: dict[str, bool]) -> dict:
    """What the metadata keeps of one INT8 scope trial: per graph, metric drop, agreement and verdict."""
    keys = ("metric", "metric_fp32", "metric_int8", "metric_drop", "agreement", "max_abs_diff", "kept_agreement",
            "passed")
    return {"scope": trial["scope"], "passed": trial["passed"],
            "graphs": {f: {k: trial[f][k] for k in keys} for f in files}}
