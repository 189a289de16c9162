"""The exported artifact folder: graph file(s), tokenizer files and one metadata JSON.

Every exporter writes the same metadata (``ltp_deploy_export.json``) so that ``inspect``, ``bench`` and
``check`` read any target the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

from ltp_deploy.checkpoint import Checkpoint
from ltp_deploy.environment import library_versions
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.spec import PruningSpec

METADATA_FILE = "ltp_deploy_export.json"
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
        "pruning": spec.mode if spec else "dense",
        "versions": library_versions(),
        **extra,
    }


def artifact_folder(path: str | Path) -> Path:
    """The export folder for a graph file or folder path."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def read_metadata(path: str | Path) -> dict:
    """The metadata of an exported graph (``path`` is the folder or a graph file inside it)."""
    file = artifact_folder(path) / METADATA_FILE
    if not file.is_file():
        raise LtpDeployError(
            f"{file} not found: {path} was not exported by ltp-deploy; export it with `ltp-deploy export`."
        )
    return json.loads(file.read_text())


def spec_of(metadata: dict) -> PruningSpec | None:
    return PruningSpec.from_dict(metadata["spec"]) if metadata.get("spec") else None
