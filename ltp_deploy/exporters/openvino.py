"""``PrunedClassifier`` -> OpenVINO IR (``model.xml`` + ``model.bin``), validated in OpenVINO before it is kept.

The path goes through ONNX: the graph is exported with ``torch_to_onnx`` (the same data-dependent gathers as
the ONNX target; in the batched graph, attention traced as three Q/K/V GEMMs, the form OpenVINO's CPU plugin
fuses, measured faster there and slower in the batch-1 graph) into a temporary folder, converted with
``openvino.convert_model`` and saved with ``openvino.save_model``. Validation runs the saved IR on OpenVINO's CPU
plugin with ``INFERENCE_PRECISION_HINT=f32`` forced, whatever the CPU would pick (bf16 on AMX machines).

Precision (the stored weights; OpenVINO's CPU plugin widens fp16 weights to f32 on load):

* ``fp32``: the same rule as ONNX: every case within ``atol`` (default 1e-4) with identical kept counts.
* ``fp16``: rounding every weight to fp16 moves logits by ~1e-3, so ``atol`` defaults to 1e-2. It also moves
  token scores, and a score sitting next to a threshold may cross it: a legitimate change of kept counts. Rule:
  the real-sentence cases must keep identical counts (a flip there is a change users would see, and fails the
  export); a random-token case whose counts differ is *tolerated* and listed in the metadata, and its logits
  are not compared (a different token set gives different logits by design); every case whose counts agree
  must be within ``atol``.

Example::

    ckpt = load_checkpoint("runs/sst2-ltp")
    result = export_openvino(ckpt, "out/sst2-ov", precision="fp16")   # ExportValidationError leaves nothing
    result.metadata["validation"]["tolerated"]
"""

from __future__ import annotations

from pathlib import Path

from ltp_deploy.checkpoint import Checkpoint
from ltp_deploy.data import Examples
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.exporters import TARGETS
from ltp_deploy.exporters.steps import ExportResult, export_validated
from ltp_deploy.exporters.int8 import Int8Options
from ltp_deploy.exporters.onnx import EXPORTER, graph_opset, torch_to_onnx
from ltp_deploy.model import PrunedClassifier
from ltp_deploy.output_locks import scratch_on_demand
from ltp_deploy.packing import Ladder, ShapeBuckets

GRAPH_FILE = TARGETS["openvino"].graph_file  # model.bin is written beside it
BATCH1_FILE = "model-b1.xml"  # the batch-1 form (+ model-b1.bin), as in exporters.onnx
PRECISIONS = TARGETS["openvino"].precisions
# The batched INT8 graph rounds its row count and attention length up (``packing.ShapeBuckets``): OpenVINO compiles
# its INT8 (AMX/VNNI) GEMM kernels per shape, and behind each pruning step that compile is on the critical path.
# Measured (docs/results/openvino.md): x1.51 at batch 32 on SST-2 in INT8; no gain in fp32, whose GEMMs are not
# compiled per shape, so fp32 graphs keep exact sizes.
BATCHED_BUCKETS = ShapeBuckets(rows=Ladder(granule=16, bits=3), slots=Ladder(granule=8, bits=3))
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 1e-2, "int8": 1e-4}  # INT8 is gated on outcomes (Int8Options)
VALIDATION_PRECISION_HINT = "f32"


def default_atol(precision: str) -> float:
    """The logit tolerance used when none is given: 1e-4 for fp32 weights, 1e-2 for fp16 weights."""
    _check_precision(precision)
    return DEFAULT_ATOL[precision]


def export_openvino(ckpt: Checkpoint, out: str | Path, *, dense: bool = False, examples: Examples | None = None,
                    atol: float | None = None, precision: str = "fp32", single_sequence: bool = False,
                    batch1_graph: bool = True, int8: Int8Options | None = None, overwrite: bool = False,
                    inputs=()) -> ExportResult:
    """Export ``ckpt`` to ``out/model.xml`` (+ ``model.bin``) with its tokenizer and metadata, validated in OpenVINO.

    Args:
        ckpt: a loaded checkpoint (its spec decides the pruning).
        out: the output folder; replaced only when export and validation succeed.
        dense: export the same weights with pruning off (the A/B timing baseline).
        examples: real sentences for validation (default: a small built-in set).
        atol: largest allowed |logit difference| against torch (default: ``default_atol(precision)``).
        precision: stored weights, "fp32" or "fp16" (see the module docstring for the fp16 validation rule),
            or "int8": NNCF post-training quantization (``exporters.int8``) calibrated on ``int8.calibration``
            (training sentences, never dev), gated on outcomes over ``examples`` (both required).
        int8: INT8 settings (``exporters.int8.Int8Options``), as in ``export_onnx``; activations are always
            calibrated here.
        single_sequence, batch1_graph: the batch-1 form alone, or beside the batched graph (``model-b1.xml``),
            as in ``export_onnx``.
        overwrite, inputs: the output rules, as in ``export_onnx``.

    Returns:
        An ``ExportResult``; ``metadata`` holds target "openvino", precision, the intermediate ONNX opset and
        the validation report.

    Raises:
        LtpDeployError: unknown precision or a negative/non-finite ``atol`` (before any work).
        ExportValidationError: validation failed; ``out`` is left as it was.

    Example::

        export_openvino(load_checkpoint("runs/sst2-ltp"), "out/sst2-ov")
    """
    import openvino as ov

    from ltp_deploy.exporters.int8 import calibration_set, quantize_openvino
    from ltp_deploy.runtimes.openvino import OpenVINOCPU

    _check_precision(precision)
    int8 = (int8 or Int8Options()).checked("openvino", None if dense else ckpt.spec) if precision == "int8" else None
    feeds = source = None  # tokenised once for every graph and scope tried
    if int8:
        feeds, source = calibration_set(ckpt.tokenizer(), int8.calibration, ckpt.model.config, int8.calibration_note)

    def open_for_validation(path: Path):
        return OpenVINOCPU(path, precision="fp32")  # INFERENCE_PRECISION_HINT=f32, whatever the CPU prefers

    with scratch_on_demand("onnx") as onnx_dir:  # the ONNX graphs converted, once for every INT8 scope tried
        def write_graph(model: PrunedClassifier, path: Path, single: bool, scope: str | None) -> dict:
            meta = {"exporter": f"{EXPORTER} -> openvino.convert_model", "single_sequence": single}
            buckets = BATCHED_BUCKETS if precision == "int8" and not single else None
            if buckets is not None:
                meta["shape_buckets"] = buckets.describe()
            onnx_path = onnx_dir() / f"model-{'b1' if single else 'batched'}.onnx"
            if not onnx_path.exists():  # batched: attention as three GEMMs, which OpenVINO fuses (SelfAttention)
                torch_to_onnx(model, onnx_path, single_sequence=single, separate_qkv=not single, buckets=buckets)
            meta["opset"] = graph_opset(onnx_path)
            graph = ov.convert_model(str(onnx_path))
            if precision == "int8":
                graph, meta["quantization"] = quantize_openvino(graph, model.config, model.spec, feeds, source,
                                                                scope)
            _save(ov, graph, path, out, compress_to_fp16=(precision == "fp16"))  # it compresses by default
            return meta

        return export_validated(
            ckpt, out, target="openvino", graph_file=GRAPH_FILE, write_graph=write_graph,
            open_for_validation=open_for_validation, single_sequence=single_sequence,
            batch1_file=BATCH1_FILE if batch1_graph and not single_sequence else None, dense=dense,
            examples=examples, atol=DEFAULT_ATOL[precision] if atol is None else atol, precision=precision,
            tolerate_random_flips=(precision == "fp16"),
            validation_notes={"inference_precision_hint": VALIDATION_PRECISION_HINT}, int8=int8,
            overwrite=overwrite, inputs=inputs,
        )


def _save(ov, graph, path: Path, out, compress_to_fp16: bool) -> None:
    """``openvino.save_model``; its C++ stream failure (a full disk, a size limit) becomes one sentence."""
    try:
        ov.save_model(graph, str(path), compress_to_fp16=compress_to_fp16)
    except RuntimeError as e:
        if "iostream error" not in str(e) and "Can't open" not in str(e):
            raise
        raise LtpDeployError(f"OpenVINO could not write the IR while writing {out} ({str(e).strip()[:80]}): the "
                             "disk may be full or the file over a size limit (ulimit -f): free some space, or "
                             "write somewhere else.") from e


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise LtpDeployError(f"Unknown OpenVINO export precision {precision!r}: use fp32, fp16 or int8.")
