"""Provenance: the library versions and machine facts written into every artifact and benchmark."""

from __future__ import annotations

import os
import platform
import sys
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


def rss_mb() -> float:
    """Resident memory of this process now, MiB."""
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (getrusage; psutil's current RSS where getrusage is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)  # bytes on macOS, KiB on Linux
