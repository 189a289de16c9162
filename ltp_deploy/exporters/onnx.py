"""``PrunedClassifier`` -> ONNX with real data-dependent gathers, validated in ONNX Runtime before it is kept.

Example::

    ckpt = load_checkpoint("runs/sst2-ltp")
    result = export_onnx(ckpt, "out/sst2-onnx")        # raises ExportValidationError, leaving nothing behind
    result.metadata["validation"]["max_abs_diff"]
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from ltp_deploy.checkpoint import Checkpoint
from ltp_deploy.data import Examples
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.exporters import TARGETS
from ltp_deploy.exporters.int8 import Int8Options
from ltp_deploy.exporters.steps import ExportResult, ExportValidationError, export_validated
from ltp_deploy.interrupts import received
from ltp_deploy.model import PrunedClassifier, SingleSequenceClassifier, bucketed_graph, separate_qkv_graph
from ltp_deploy.packing import ShapeBuckets
from ltp_deploy.output_locks import scratch_on_demand
from ltp_deploy.outputs import writing
from ltp_deploy.artifact import OUTPUT_NAMES

GRAPH_FILE = TARGETS["onnx"].graph_file
PRECISIONS = TARGETS["onnx"].precisions
BATCH1_FILE = "model-b1.onnx"  # the batch-1 form beside the batched graph (runtimes run it for batches of one)
# The dynamo exporter (torch.export) traces with symbolic shapes: a data-dependent value (the survivor count
# T' from NonZero) stays symbolic, and anything that would freeze it into a constant fails the export instead.
# The TorchScript exporter silently bakes such values in (and is deprecated), so it is not used.
EXPORTER = "torch.onnx.export(dynamo=True)"


def torch_to_onnx(model: PrunedClassifier, path: Path, opset: int | None = None, single_sequence: bool = False,
                  separate_qkv: bool = False, buckets: ShapeBuckets | None = None) -> int:
    """Export ``model`` with dynamic batch and sequence axes; return the graph's opset.

    ``single_sequence``: export ``SingleSequenceClassifier(model)`` instead, whose inputs are (1, sequence).
    ``separate_qkv``: trace attention in its three-GEMM form (``model.separate_qkv_graph``; the OpenVINO path).
    ``buckets``: round the packed graph's data-dependent sizes up (``model.bucketed_graph``; the OpenVINO path).
    """
    names = model.config.input_names
    ids = torch.randint(1000, 2000, (1 if single_sequence else 2, 16), generator=torch.Generator().manual_seed(0))
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    args = tuple(example[n] for n in names)
    axes = {1: torch.export.Dim("sequence", max=model.config.max_length)}
    if not single_sequence:
        axes[0] = torch.export.Dim("batch")
    dynamic = {n: axes for n in names}
    traced = SingleSequenceClassifier(model.eval()) if single_sequence else model.eval()
    with _quiet_exporter(), writing(path), bucketed_graph(model, buckets), \
            (separate_qkv_graph(model) if separate_qkv else contextlib.nullcontext()):
        torch.onnx.export(
            traced, args, str(path), dynamo=True, input_names=list(names), output_names=list(OUTPUT_NAMES),
            dynamic_shapes=dynamic, opset_version=opset, optimize=True, external_data=False, verbose=False,
        )
    return graph_opset(path)


def graph_opset(path: Path) -> int:
    """The default-domain opset an ONNX file imports."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def export_onnx(ckpt: Checkpoint, out: str | Path, *, dense: bool = False, examples: Examples | None = None,
                atol: float | None = None, opset: int | None = None, single_sequence: bool = False,
                batch1_graph: bool = True, precision: str = "fp32", int8: Int8Options | None = None,
                overwrite: bool = False, inputs=()) -> ExportResult:
    """Export ``ckpt`` to ``out/model.onnx`` with its tokenizer and metadata, validated in ONNX Runtime.

    Args:
        ckpt: a loaded checkpoint (its spec decides the pruning).
        out: the output folder; replaced only when export and validation succeed.
        dense: export the same weights with pruning off (the A/B timing baseline).
        examples: real sentences for validation (default: a small built-in set).
        atol: largest allowed |logit difference| against torch (default 1e-4; INT8: ``int8.atol``).
        opset: ONNX opset (default: the exporter's).
        single_sequence: export the batch-1 form (``SingleSequenceClassifier``) alone: inputs (1, sequence), no
            masks inside; runtimes call it once per row of a larger batch.
        batch1_graph: beside the batched graph, write the batch-1 form to ``model-b1.onnx``; runtimes opening
            the folder run it for batches of one (it has fewer nodes: the faster form at batch 1). Ignored with
            ``single_sequence``.
        precision: "fp32", or "int8": ONNX Runtime's quantizer (``exporters.int8``), gated on outcomes over
            ``examples`` (required, labelled unless ``int8.min_agreement`` is given).
        int8: INT8 settings (``exporters.int8.Int8Options``; default: every projection or the decision scope,
            whichever passes, static activations calibrated on ``int8.calibration``, gate 0.5 metric points).
        overwrite: replace an existing ``out`` that is not an earlier ltp-deploy export (``outputs.check_output``).
        inputs: further paths ``out`` may not overlap (the checkpoint folder always counts).

    Raises:
        ExportValidationError: validation failed; ``out`` is left as it was.
        LtpDeployError: ``out`` would destroy something (it overlaps an input, or exists and is not an export).
    """
    from ltp_deploy.runtimes.onnxruntime import OnnxRuntimeCPU

    from ltp_deploy.exporters.int8 import calibration_set, quantize_onnx

    _check_opset(opset)
    if precision not in PRECISIONS:
        raise LtpDeployError(f"Unknown ONNX export precision {precision!r}: use {' or '.join(PRECISIONS)}.")
    int8 = (int8 or Int8Options()).checked("onnx", None if dense else ckpt.spec) if precision == "int8" else None
    feeds = source = None
    if int8 and int8.static("onnx"):
        feeds, source = calibration_set(ckpt.tokenizer(), int8.calibration, ckpt.model.config, int8.calibration_note)

    with scratch_on_demand("onnx") as tmp:  # the fp32 graphs INT8 quantizes, once for every scope tried
        def write_graph(model: PrunedClassifier, path: Path, single: bool, scope: str | None) -> dict:
            meta = {"exporter": EXPORTER, "single_sequence": single}
            if precision == "fp32":
                return {"opset": torch_to_onnx(model, path, opset, single), **meta}
            fp32 = tmp() / f"model-{'b1' if single else 'batched'}.onnx"
            if not fp32.exists():
                torch_to_onnx(model, fp32, opset, single)
            with writing(path):
                quantization = quantize_onnx(fp32, path, model.config, model.spec, scope, feeds, source)
            return {"opset": graph_opset(fp32), **meta, "quantization": quantization}

        return export_validated(ckpt, out, target="onnx", graph_file=GRAPH_FILE, write_graph=write_graph,
                                open_for_validation=OnnxRuntimeCPU, single_sequence=single_sequence,
                                batch1_file=BATCH1_FILE if batch1_graph and not single_sequence else None,
                                dense=dense, examples=examples, precision=precision, int8=int8,
                                overwrite=overwrite, inputs=inputs, atol=1e-4 if atol is None else atol)

MIN_OPSET = 18  # the dynamo exporter's oldest


def _check_opset(opset: int | None) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise LtpDeployError(f"--opset {opset} is not one the exporter writes: use {MIN_OPSET} to {newest}, or leave "
                             "it out for the default.")


# Loggers that print progress, warnings or (once a Ctrl-C is turned into a TypeError by fake tensors) long
# tracebacks while torch.onnx exports.
_EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "torch._subclasses.fake_tensor")


def _not_after_a_signal(record: logging.LogRecord) -> bool:
    """Drop log records once SIGINT/SIGTERM has arrived: they describe the interruption, not a fault."""
    return received() is None


@contextlib.contextmanager
def _quiet_exporter():
    """torch.onnx prints progress lines and warnings we do not want in a CLI's output."""
    loggers = [logging.getLogger(n) for n in _EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
        lg.addFilter(_not_after_a_signal)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
            lg.removeFilter(_not_after_a_signal)


__all__ = ["EXPORTER", "GRAPH_FILE", "ExportResult", "ExportValidationError", "export_onnx", "torch_to_onnx"]
