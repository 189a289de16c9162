"""Runtime adapters: one interface (``Runtime``), chosen from the model file and the device.

=====================================  ===========================  =========  ==========
path                                   backend (first row: default)    devices    precisions
=====================================  ===========================  =========  ==========
``model.onnx``                         onnxruntime                  cpu, cuda  fp32
``model.onnx``                         openvino                     cpu        fp32, bf16
``model.xml`` (OpenVINO IR)            openvino                     cpu        fp32, bf16
export folder (ltp_deploy_export)      as its graph file(s)         as above   as above
dense ONNX folder (model.onnx and      as ``model.onnx``            as above   as above
config.json, no weights: Optimum)
checkpoint folder (config.json and     torch                        cpu, cuda  fp32
weights)
=====================================  ===========================  =========  ==========

The rule (``resolve_model``): a folder with ``ltp_deploy_export.json`` is an export; else a folder with
``config.json`` and ``model.onnx`` but no weights is a foreign dense graph (``artifact.open_foreign``), as is a
``.onnx`` file with ``config.json`` beside it; a folder with ``config.json`` and weights is a checkpoint, run in
torch, unless ``--backend onnxruntime|openvino`` is given and it also holds ``model.onnx``, which then runs.
A foreign graph has only ``logits``: its adapter reports each row's real length as the kept count of every
layer (a dense model keeps every token).

An export folder that holds a batch-1 graph beside its batched one (``artifact.Artifact.batch1``, the default
export), loads both into one ``BatchOneRouter``, from the folder or its batched graph file: batches of one run the
batch-1 graph. Naming the batch-1 file loads it alone.

Invalid combinations raise one ``LtpDeployError`` naming the valid options; nothing falls back silently.

Example::

    from ltp_deploy.runtimes import open_runtime
    rt = open_runtime("out/model.onnx", device="cuda")
    rt = open_runtime("out/sst2-ov", threads=4, precision="bf16", hint="throughput")
    rt.name, rt.device, rt.precision, rt.load_seconds
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes.base import Runtime


def _onnxruntime(graph, device_type, device_id, threads, precision, hint) -> Runtime:
    from ltp_deploy.runtimes.onnxruntime import OnnxRuntimeCPU, OnnxRuntimeCUDA

    if device_type == "cuda":
        return OnnxRuntimeCUDA(graph, threads=threads, device_id=device_id)
    return OnnxRuntimeCPU(graph, threads=threads)


def _openvino(graph, device_type, device_id, threads, precision, hint) -> Runtime:
    from ltp_deploy.runtimes.openvino import OpenVINOCPU

    return OpenVINOCPU(graph, threads=threads, precision=precision, hint=hint or "latency")


def _torch(graph, device_type, device_id, threads, precision, hint) -> Runtime:
    from ltp_deploy.runtimes.torch import TorchRuntime

    return TorchRuntime(graph, device=device_type if device_id == 0 else f"cuda:{device_id}", threads=threads)


@dataclass(frozen=True)
class Adapter:
    """One runtime adapter: what it loads, where it runs, what it computes in, and how it is loaded."""

    name: str
    inputs: tuple[str, ...]  # graph suffixes it runs (".onnx", ".xml"), or "checkpoint" (a checkpoint folder)
    devices: tuple[str, ...]
    precisions: tuple[str, ...]  # compute precisions (the first is the default)
    load: Callable[..., Runtime]  # (graph, device_type, device_id, threads, precision, hint) -> Runtime
    hints: bool = False  # takes a performance hint (OpenVINO's latency / throughput)


# The one table of runtime adapters. A new runtime: its adapter module (a ``Runtime`` subclass) and one row here;
# the first adapter that runs a suffix is that suffix's default.
ADAPTERS: dict[str, Adapter] = {a.name: a for a in (
    Adapter("onnxruntime", (".onnx",), ("cpu", "cuda"), ("fp32",), _onnxruntime),
    Adapter("openvino", (".onnx", ".xml"), ("cpu",), ("fp32", "bf16"), _openvino, hints=True),
    Adapter("torch", ("checkpoint",), ("cpu", "cuda"), ("fp32",), _torch),
)}
BACKENDS = tuple(ADAPTERS)
GRAPH_BACKENDS = tuple(a.name for a in ADAPTERS.values() if any(i.startswith(".") for i in a.inputs))
DEVICES = tuple(dict.fromkeys(d for a in ADAPTERS.values() for d in a.devices))
COMPUTE_PRECISIONS = tuple(dict.fromkeys(p for a in ADAPTERS.values() for p in a.precisions))


def backends_for(kind: str) -> tuple[str, ...]:
    """The adapters that run ``kind`` (a graph suffix, or "checkpoint"), the default first."""
    return tuple(a.name for a in ADAPTERS.values() if kind in a.inputs)


def open_runtime(path: str | Path, device: str = "cpu", backend: str | None = None, threads: int | None = None,
                 precision: str | None = None, hint: str | None = None) -> Runtime:
    """Load ``path`` with the adapter its file type, ``backend`` and ``device`` call for.

    Args:
        path: an ``.onnx`` or ``.xml`` graph, an export folder (holding ``ltp_deploy_export.json``), a dense ONNX
            folder (``model.onnx`` + ``config.json``, e.g. an Optimum export) or a checkpoint folder
            (``config.json`` and weights; run in torch with the folder's own pruning spec).
        device: "cpu" or "cuda" ("cuda:N" for another GPU).
        backend: "onnxruntime", "openvino" or "torch"; default: the first valid one for the file type.
        threads: intra-op threads (default: the runtime's choice).
        precision: compute precision, "fp32" (default) or, with openvino, "bf16".
        hint: OpenVINO performance hint, "latency" (default) or "throughput"; openvino only.

    Returns:
        A loaded ``Runtime`` with ``name``, ``device``, ``precision`` and ``load_seconds`` set.

    Raises:
        LtpDeployError: a missing path, an unknown option, or a combination that no adapter supports.

    Example::

        rt = open_runtime("out/sst2-onnx", device="cpu", backend="openvino", threads=4)
    """
    kind, graph, art = resolve_model(Path(path), backend)
    device_type, device_id = _parse_device(device)
    if backend is not None and backend not in BACKENDS:
        raise LtpDeployError(f"Unknown backend {backend!r}: use one of {', '.join(BACKENDS)}.")
    allowed = backends_for(kind)
    backend = backend or allowed[0]
    if backend not in allowed:
        what = "a checkpoint folder" if kind == "checkpoint" else f"a {kind} graph"
        raise LtpDeployError(f"{graph} is {what}, which runs with backend {' or '.join(allowed)}, not {backend}: "
                             f"pass --backend {allowed[0]} or leave --backend out.")
    adapter = ADAPTERS[backend]
    if device_type not in adapter.devices:
        cuda = [a.name for a in ADAPTERS.values() if "cuda" in a.devices]
        raise LtpDeployError(f"Backend {backend} runs on {' or '.join(adapter.devices)} only, not {device}: "
                             f"use --device cpu, or {' or '.join(cuda)} for cuda.")
    precision = precision or adapter.precisions[0]
    if precision not in adapter.precisions:
        valid = adapter.precisions
        others = [f"--backend {a.name} for {p}" for a in ADAPTERS.values() for p in a.precisions if p == precision]
        fix = f"use --precision {' or '.join(valid)}" + (f" ({others[0]})" if others else "")
        raise LtpDeployError(f"Backend {backend} computes in {' or '.join(valid)}, not {precision}: {fix}.")
    if hint is not None and not adapter.hints:
        takes = " or ".join(a.name for a in ADAPTERS.values() if a.hints)
        raise LtpDeployError(f"The performance hint {hint!r} is an OpenVINO setting: drop --hint or use "
                             f"--backend {takes}.")
    if threads is not None and threads < 1:
        raise LtpDeployError(f"threads must be a positive number, got {threads}: leave it out for the default.")
    runtime = adapter.load(graph, device_type, device_id, threads, precision, hint)
    if art is None or art.batch1 is None:
        return runtime
    from ltp_deploy.runtimes.base import BatchOneRouter

    return BatchOneRouter(runtime, adapter.load(art.batch1, device_type, device_id, threads, precision, hint))


def resolve_model(path: str | Path, backend: str | None = None):
    """``(kind, file or folder to load, artifact)`` for ``path``, by the rule in the module docstring.

    kind is ".onnx", ".xml" or "checkpoint"; artifact is the opened ``Artifact`` of an export or a foreign dense
    graph (``artifact.open_model_artifact``), None for a checkpoint folder or a bare graph. ``backend`` matters
    only for a checkpoint folder that also holds ``model.onnx``: a graph backend runs the graph.

    Raises:
        LtpDeployError: a missing path, a folder that is none of these, a file that is no graph, damaged metadata.
    """
    from ltp_deploy.artifact import GRAPH_SUFFIXES, METADATA_FILE, open_model_artifact
    from ltp_deploy.checkpoint import CONFIG_FILE

    path = Path(path)
    if not path.exists():
        raise LtpDeployError(f"{path} does not exist: pass a .onnx or .xml graph, an export folder or a "
                             "checkpoint folder.")
    art = open_model_artifact(path, prefer_graph=backend in GRAPH_BACKENDS)
    if art is not None:
        return art.graph.suffix, art.graph, art
    if path.is_dir():
        if (path / CONFIG_FILE).is_file():
            return "checkpoint", path, None
        raise LtpDeployError(f"{path} holds neither {METADATA_FILE} nor {CONFIG_FILE}: pass an export folder, "
                             "a checkpoint folder, a folder with model.onnx and its config.json (an Optimum "
                             "export), or a .onnx/.xml file.")
    if path.suffix not in GRAPH_SUFFIXES:
        raise LtpDeployError(f"{path} is not a model file: pass a .onnx or .xml graph, an export folder or a "
                             "checkpoint folder.")
    return path.suffix, path, None


def _parse_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind in DEVICES and (not index or (kind == "cuda" and index.isdigit())):
        return kind, int(index or 0)
    raise LtpDeployError(f"Unknown device {device!r}: use cpu or cuda (cuda:N for another GPU).")


__all__ = ["ADAPTERS", "BACKENDS", "COMPUTE_PRECISIONS", "DEVICES", "GRAPH_BACKENDS", "Adapter", "Runtime",
           "backends_for", "open_runtime", "resolve_model"]
