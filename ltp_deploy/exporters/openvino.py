"""``PrunedClassifier`` -> OpenVINO IR (``model.xml`` + ``model.bin``), validated in OpenVINO before it is kept.

The path goes through ONNX: the graph is exported with ``torch_to_onnx`` (the same data-dependent gathers as
the ONNX target) into a temporary folder, converted with ``openvino.convert_model`` and saved with
``openvino.save_model``. Validation runs the saved IR on OpenVINO's CPU plugin with
``INFERENCE_PRECISION_HINT=f32`` forced, whatever the CPU would pick (bf16 on AMX machines).

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

import tempfile
from pathlib import Path

from ltp_deploy.checkpoint import Checkpoint
from ltp_deploy.data import Examples
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.exporters.steps import ExportResult, export_validated
from ltp_deploy.exporters.onnx import EXPORTER, torch_to_onnx
from ltp_deploy.model import PrunedClassifier

GRAPH_FILE = "model.xml"  # model.bin is written beside it
BATCH1_FILE = "model-b1.xml"  # the batch-1 form (+ model-b1.bin), as in exporters.onnx
PRECISIONS = ("fp32", "fp16")
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 1e-2}
VALIDATION_PRECISION_HINT = "f32"


def default_atol(precision: str) -> float:
    """The logit tolerance used when none is given: 1e-4 for fp32 weights, 1e-2 for fp16 weights."""
    _check_precision(precision)
    return DEFAULT_ATOL[precision]


def export_openvino(ckpt: Checkpoint, out: str | Path, *, dense: bool = False, examples: Examples | None = None,
                    atol: float | None = None, precision: str = "fp32", single_sequence: bool = False,
                    batch1_graph: bool = True, overwrite: bool = False, inputs=()) -> ExportResult:
    """Export ``ckpt`` to ``out/model.xml`` (+ ``model.bin``) with its tokenizer and metadata, validated in OpenVINO.

    Args:
        ckpt: a loaded checkpoint (its spec decides the pruning).
        out: the output folder; replaced only when export and validation succeed.
        dense: export the same weights with pruning off (the A/B timing baseline).
        examples: real sentences for validation (default: a small built-in set).
        atol: largest allowed |logit difference| against torch (default: ``default_atol(precision)``).
        precision: stored weights, "fp32" or "fp16" (see the module docstring for the fp16 validation rule).
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

    from ltp_deploy.runtimes.openvino import OpenVINOCPU

    _check_precision(precision)

    def write_graph(model: PrunedClassifier, path: Path, single: bool) -> dict:
        with tempfile.TemporaryDirectory(prefix="ltp-deploy-onnx-") as onnx_dir:
            onnx_path = Path(onnx_dir) / "model.onnx"
            opset = torch_to_onnx(model, onnx_path, single_sequence=single)
            ov.save_model(ov.convert_model(str(onnx_path)), str(path),
                          compress_to_fp16=(precision == "fp16"))  # save_model compresses by default
        return {"opset": opset, "exporter": f"{EXPORTER} -> openvino.convert_model", "single_sequence": single}

    def open_for_validation(path: Path):
        return OpenVINOCPU(path, precision="fp32")  # INFERENCE_PRECISION_HINT=f32, whatever the CPU prefers

    return export_validated(
        ckpt, out, target="openvino", graph_file=GRAPH_FILE, write_graph=write_graph,
        open_for_validation=open_for_validation, single_sequence=single_sequence,
        batch1_file=BATCH1_FILE if batch1_graph and not single_sequence else None, dense=dense, examples=examples,
        atol=DEFAULT_ATOL[precision] if atol is None else atol, precision=precision,
        tolerate_random_flips=(precision == "fp16"),
        validation_notes={"inference_precision_hint": VALIDATION_PRECISION_HINT}, overwrite=overwrite, inputs=inputs,
    )


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise LtpDeployError(f"Unknown OpenVINO export precision {precision!r}: use fp32 or fp16.")
