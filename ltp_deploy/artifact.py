"""What an exported artifact holds, opened in one place: the graph file, its ``EncoderConfig``, pruning spec,
metadata and output names.

An export folder holds its graph (``model.onnx``, or ``model.xml`` + ``model.bin``), usually the batch-1 form of
the same network beside it (``model-b1.onnx`` / ``model-b1.xml``, metadata ``batch1_graph``: runtimes run it for
batches of one), the tokenizer files and ``ltp_deploy_export.json``; a graph file inside such a folder opens the
same artifact (the batch-1 file itself opens as a single-sequence artifact of its own). Runtimes, ``bench``,
``check`` and ``inspect`` all go through ``open_artifact``, so a broken folder fails the same way everywhere.

A *foreign dense graph* is an ONNX graph that another tool exported, such as Hugging Face Optimum's
``optimum-cli export onnx --task text-classification``: ``model.onnx`` with the model's Hugging Face
``config.json`` (and tokenizer files) beside it and no ``ltp_deploy_export.json``. It opens as the same
``Artifact`` (``open_foreign``), dense, with the one output ``logits``. The rule of which path is what is
``open_model_artifact``.

Example::

    art = open_artifact("out/sst2-onnx")          # or "out/sst2-onnx/model.onnx"
    art.graph, art.config.num_layers, art.spec, art.metadata["validation"]["max_abs_diff"]
    peer = open_model_artifact("out/sst2-optimum")  # an Optimum export: peer.foreign, peer.outputs == ("logits",)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.encoder_config import EncoderConfig
from ltp_deploy.exporters import TARGETS
from ltp_deploy.outputs import FOLDER_MARKERS
from ltp_deploy.spec import PruningSpec

METADATA_FILE = FOLDER_MARKERS["export"]
GRAPH_SUFFIXES = tuple(dict.fromkeys(Path(t.graph_file).suffix for t in TARGETS.values()))  # (".onnx", ".xml")
OUTPUT_NAMES = ("logits", "kept_counts")  # every exported graph names its outputs so
FOREIGN_OUTPUTS = ("logits",)  # what a foreign dense graph (e.g. an Optimum export) gives
FOREIGN_GRAPH = "model.onnx"  # the graph file of a foreign export folder (Optimum's name)
HF_CONFIG = "config.json"  # the Hugging Face config beside a foreign graph (checkpoint.CONFIG_FILE)
_REQUIRED = ("graph", "config")


def artifact_folder(path: str | Path) -> Path:
    """The export folder for a graph file or folder path."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is an export folder or a file inside one (it holds ``ltp_deploy_export.json``)."""
    return (artifact_folder(path) / METADATA_FILE).is_file()


@dataclass(frozen=True)
class Artifact:
    """An opened export: every field is checked when it is opened."""

    folder: Path
    graph: Path  # the graph file: the one given, or the one the metadata names
    metadata: dict  # the parsed ltp_deploy_export.json
    config: EncoderConfig
    spec: PruningSpec | None  # None: a dense export
    foreign: bool = False  # a foreign dense graph (``open_foreign``): no metadata, only ``logits``
    batch1: Path | None = None  # the batch-1 graph that runs batches of one (None: ``graph`` runs every batch)

    @property
    def outputs(self) -> tuple[str, ...]:
        if self.foreign:
            return FOREIGN_OUTPUTS
        return tuple(self.metadata.get("outputs") or OUTPUT_NAMES)

    @property
    def pruning(self) -> str:
        return self.spec.mode if self.spec else "dense"

    @property
    def single_sequence(self) -> bool:
        """``graph`` is the batch-1 form (``export --single-sequence``, or the batch-1 file opened by name)."""
        return bool(self.metadata.get("single_sequence", False)) or (
            self.graph.name == self.metadata.get("batch1_graph"))


def read_metadata(path: str | Path) -> dict:
    """The parsed metadata of an export folder (or of the folder of a graph file inside it).

    Raises:
        LtpDeployError: no metadata file, or one that is not a JSON object.
    """
    path = Path(path)
    file = artifact_folder(path) / METADATA_FILE
    if not file.is_file():
        raise LtpDeployError(
            f"{file} not found: {path} was not exported by ltp-deploy; export it with `ltp-deploy export`."
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise LtpDeployError(f"{file} is not readable JSON ({type(e).__name__}): the export is damaged; "
                             "re-export it with `ltp-deploy export`.") from None
    if not isinstance(data, dict):
        raise LtpDeployError(f"{file} does not hold a JSON object: the export is damaged; re-export it.")
    return data


def open_artifact(path: str | Path) -> Artifact:
    """Open an export folder, or a graph file inside one, and check what its metadata says.

    Raises:
        LtpDeployError: a missing path, a folder that is no export, damaged metadata (missing keys, a config
            or spec that does not parse), or a graph file that is missing or not a graph.
    """
    path = Path(path)
    if not path.exists():
        raise LtpDeployError(f"{path} does not exist: pass an export folder or its .onnx/.xml graph.")
    if path.is_file() and path.suffix not in GRAPH_SUFFIXES:
        raise LtpDeployError(f"{path} is not a graph file: pass an export folder or its .onnx/.xml graph.")
    meta = read_metadata(path)
    file = artifact_folder(path) / METADATA_FILE
    missing = [k for k in _REQUIRED if k not in meta]
    if missing or not isinstance(meta["graph"], str) or not isinstance(meta["config"], dict):
        raise LtpDeployError(f"{file} lacks a valid {(missing or ['graph/config'])[0]!r} entry: the export is "
                             "damaged; re-export it with `ltp-deploy export`.")
    folder = artifact_folder(path)
    named = _named_graph(folder, meta, "graph", file)
    batch1 = _named_graph(folder, meta, "batch1_graph", file) if meta.get("batch1_graph") is not None else None
    graph = path if path.is_file() else named
    for need in (graph, batch1):
        if need is not None and not need.is_file():
            raise LtpDeployError(f"{need} named by {METADATA_FILE} is missing: re-export the folder.")
    config = config_from_metadata(meta["config"], where=str(file))
    spec = None
    if meta.get("spec") is not None:
        spec = PruningSpec.from_dict(meta["spec"], where=f"the spec in {file}")
        if spec.num_layers != config.num_layers:
            raise LtpDeployError(f"The spec in {file} has {spec.num_layers} layers but the config has "
                                 f"{config.num_layers}: the export is damaged; re-export it.")
    return Artifact(folder, graph, meta, config, spec, batch1=batch1 if graph.name == named.name else None)


def _named_graph(folder: Path, meta: dict, key: str, file: Path) -> Path:
    """``folder / meta[key]``, checked to be a bare .onnx/.xml file name."""
    name = meta[key]
    if not isinstance(name, str) or Path(name).name != name or Path(name).suffix not in GRAPH_SUFFIXES:
        raise LtpDeployError(f"{file} names {name!r} as its {key.replace('_', ' ')}, which is not a .onnx/.xml file "
                             "in the folder: the export is damaged; re-export it.")
    return folder / name


def config_from_metadata(d: dict, where: str = "the export metadata") -> EncoderConfig:
    """The ``EncoderConfig`` an export recorded (``dataclasses.asdict`` of it), checked field by field."""
    known = {f.name for f in fields(EncoderConfig)}
    kw = {k: v for k, v in d.items() if k in known}
    if kw.get("id2label") is not None:
        kw["id2label"] = tuple(kw["id2label"])
    try:
        return EncoderConfig(**kw)
    except TypeError as e:
        raise LtpDeployError(f"The config in {where} is incomplete ({e}): the export is damaged; re-export it.") \
            from None


# ------------------------------------------------------------------------------------------------ foreign graphs

def is_foreign(path: str | Path, prefer_graph: bool = False) -> bool:
    """Whether ``path`` names a foreign dense ONNX graph (or an OpenVINO IR made from one).

    That is: no ``ltp_deploy_export.json`` in its folder, a Hugging Face ``config.json`` there, and either ``path``
    is a ``.onnx`` or ``.xml`` file, or ``path`` is a folder holding ``model.onnx`` and, unless ``prefer_graph``, no checkpoint
    weights (``model.safetensors``, its index, ``pytorch_model.bin``). A folder with both weights and
    ``model.onnx`` is the checkpoint (run in torch) unless a graph backend is asked for (``prefer_graph``).
    """
    path = Path(path)
    folder = artifact_folder(path)
    if is_export(path) or not (folder / HF_CONFIG).is_file():
        return False
    if path.is_file():
        return path.suffix in GRAPH_SUFFIXES  # an .xml: an IR made from one (e.g. the NNCF INT8 peer)
    from ltp_deploy.checkpoint import has_weights

    return (folder / FOREIGN_GRAPH).is_file() and (prefer_graph or not has_weights(folder))


def open_foreign(path: str | Path) -> Artifact:
    """Open a foreign dense ONNX graph (``is_foreign``): the ``.onnx`` given or the folder's ``model.onnx``, its
    ``EncoderConfig`` from ``config.json`` (``EncoderConfig.from_hf``), ``spec`` None, ``metadata`` empty,
    ``outputs`` ``("logits",)``; the tokenizer files are expected in ``folder``.

    Raises:
        LtpDeployError: no ``config.json`` or ``model.onnx``, a ``config.json`` that is not a BERT/RoBERTa config.
    """
    from ltp_deploy.checkpoint import read_encoder_config

    path = Path(path)
    folder = artifact_folder(path)
    graph = path if path.is_file() else folder / FOREIGN_GRAPH
    for need in (graph, folder / HF_CONFIG):
        if not need.is_file():
            raise LtpDeployError(f"{need} not found: a dense ONNX export (e.g. `optimum-cli export onnx`) holds "
                                 f"{FOREIGN_GRAPH} and the model's {HF_CONFIG}.")
    return Artifact(folder, graph, {}, read_encoder_config(folder)[1], None, foreign=True)


def open_model_artifact(path: str | Path, prefer_graph: bool = False) -> Artifact | None:
    """The graph artifact ``path`` names: an ltp-deploy export (``open_artifact``), a foreign dense graph
    (``open_foreign``; ``prefer_graph`` as in ``is_foreign``), or None (a checkpoint folder or a bare graph)."""
    if is_export(path):
        return open_artifact(path)
    return open_foreign(path) if is_foreign(path, prefer_graph) else None
