"""Provenance: the library versions and machine facts written into every artifact and benchmark."""

from __future__ import annotations

import os
import platform
from importlib import metadata

_LIBRARIES = ("ltp-deploy", "torch", "transformers", "tokenizers", "onnx", "onnxscript", "onnxruntime",
              "onnxruntime-gpu", "openvino", "numpy")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape an export or a timing (absent ones left out)."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), or platform.processor() elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
    }
