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
                     write_graph: Callable[[PrunedClassifier, Path], dict], open_for_validation: Callable,
                     dense: bool = False, examples=None, atol: float = 1e-4, precision: str = "fp32",
                     tolerate_random_flips: bool = False, validation_notes: dict | None = None,
                     overwrite: bool = False, inputs=()) -> ExportResult:
    """The steps every target shares: write the graph into a temporary folder, save the tokenizer, validate the
    graph in its runtime against the torch model, compare with LTP's masked rule, write the metadata, and only
    then move the folder to ``out``.

    Args:
        write_graph: ``(model, folder) -> dict`` writes ``folder/graph_file``; returns metadata (opset, exporter).
        open_for_validation: ``path -> Runtime`` that runs the graph with f32 arithmetic.
        validation_notes: recorded beside the validation results (e.g. the precision hint used).
        overwrite, inputs: the output rules (``outputs.check_output``); ``ckpt.path`` is always an input.
        (the rest as in ``export_onnx``)

    Raises:
        ExportValidationError: validation failed; ``out`` is left as it was.
    """
    from ltp_deploy.exporters.validate import reference_agreement, validate, validation_cases

    if not (math.isfinite(atol) and atol >= 0):
        raise LtpDeployError(f"atol must be a finite number >= 0, got {atol}: e.g. --atol 1e-4.")
    rules = {"inputs": (ckpt.path, *inputs), "overwrite": overwrite}  # atomic_dir checks them before any write
    model = ckpt.model.with_spec(None) if dense else ckpt.model
    tokenizer = ckpt.tokenizer()
    with progress_bar(total=3, description=f"export {target}") as advance, atomic_dir(out, "export", **rules) as tmp:
        graph_meta = write_graph(model, tmp)
        save_tokenizer(tokenizer, tmp)
        advance(description=f"validate {target}")
        runtime = open_for_validation(tmp / graph_file)
        report = validate(runtime, model, validation_cases(tokenizer, model, examples), atol, tolerate_random_flips)
        del runtime  # release the graph file before the folder moves
        advance(description="compare with the masked rule")
        metadata = export_metadata(
            ckpt, model.spec, target, graph_file, inputs=list(model.config.input_names), outputs=list(OUTPUT_NAMES),
            precision=precision, **graph_meta, validation={**report.to_dict(), **(validation_notes or {})},
            reference=reference_agreement(model, tokenizer, examples),
        )
        if not report.passed:
            raise ExportValidationError(
                f"Exported graph disagrees with the torch model in {report.runtime} ({'; '.join(report.failures())})"
                ": nothing was written; report this with the checkpoint, or loosen --atol if the gap is numerical."
            )
        write_json(tmp / METADATA_FILE, metadata)
        advance()
    return ExportResult(Path(out), Path(out) / graph_file, metadata)
