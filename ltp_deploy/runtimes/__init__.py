"""Runtime adapters: one interface (``Runtime``), chosen from the model file and the device.

Example::

    from ltp_deploy.runtimes import open_runtime
    rt = open_runtime("out/model.onnx", device="cpu")
"""

from __future__ import annotations

from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes.base import Runtime


def open_runtime(path: str | Path, device: str = "cpu", backend: str | None = None, threads: int | None = None) -> Runtime:
    """Load ``path`` (``model.onnx`` or an export folder) with the adapter its file type and ``device`` call for."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise LtpDeployError(f"Model file {path} does not exist: pass an exported model.onnx or its folder.")
    if path.suffix == ".onnx" and device == "cpu" and backend in (None, "onnxruntime"):
        from ltp_deploy.runtimes.onnxruntime import OnnxRuntimeCPU

        return OnnxRuntimeCPU(path, threads=threads)
    raise LtpDeployError(f"No runtime for {path.suffix} files on device {device!r} (backend {backend!r}).")


__all__ = ["Runtime", "open_runtime"]
