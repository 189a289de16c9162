"""Exporters: a checkpoint in, a validated export folder out, one per target.

``TARGETS`` is the one table of export targets: the graph file an export folder holds, the runtime adapter that
validates and runs it by default, the weight precisions it can store, the options only it takes, and its export
function (loaded on use). A new target: its exporter module and one row here.

Example::

    from ltp_deploy.exporters import ExportSettings, run_export
    result = run_export(ExportSettings("runs/sst2-hold", "out/sst2-onnx", target="onnx", task="sst2"))
    result.graph, result.metadata["validation"]["max_abs_diff"]
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Callable


@dataclass(frozen=True)
class ExportTarget:
    """One export target (``--target``)."""

    name: str
    label: str  # the format's name in messages
    graph_file: str  # the graph inside an export folder; a batch-1 graph sits beside it as <stem>-b1<suffix>
    runtime: str  # the ``runtimes.ADAPTERS`` row that validates it (and runs it unless --backend says otherwise)
    precisions: tuple[str, ...]  # weight precisions it stores (``WEIGHT_PRECISIONS``)
    options: tuple[str, ...]  # ``ExportSettings`` fields only this target takes
    function: str  # "module:function" of its exporter, imported on use (the exporters import torch)

    @property
    def export(self) -> Callable:
        module, _, name = self.function.partition(":")
        return getattr(import_module(module), name)


TARGETS: dict[str, ExportTarget] = {t.name: t for t in (
    ExportTarget("onnx", "ONNX", "model.onnx", "onnxruntime", ("fp32", "int8"), ("opset", "int8_activations"),
                 "ltp_deploy.exporters.onnx:export_onnx"),
    ExportTarget("openvino", "OpenVINO IR", "model.xml", "openvino", ("fp32", "fp16", "int8"), (),
                 "ltp_deploy.exporters.openvino:export_openvino"),
)}
# Weight precisions (what a graph stores), in --help's order; each target's ``precisions`` are drawn from these.
# Compute precisions (what a runtime computes in) are ``runtimes.COMPUTE_PRECISIONS``.
WEIGHT_PRECISIONS = ("fp32", "fp16", "int8")
TARGET_FOR_RUNTIME = {t.runtime: t.name for t in TARGETS.values()}  # the target whose graphs a runtime runs natively

from ltp_deploy.exporters.settings import ExportSettings  # noqa: E402 (needs TARGETS)
from ltp_deploy.exporters.run import run_export  # noqa: E402

__all__ = ["TARGETS", "TARGET_FOR_RUNTIME", "WEIGHT_PRECISIONS", "ExportSettings", "ExportTarget", "run_export"]
