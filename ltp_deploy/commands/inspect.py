"""``ltp-deploy inspect PATH``: what a checkpoint or an exported graph holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

HELP = "Show what a checkpoint folder or exported graph holds: architecture, pruning, opset, inputs, outputs."
EXAMPLES = """\b
Examples:
  ltp-deploy inspect runs/sst2-ltp
  ltp-deploy inspect out/sst2-onnx/model.onnx
  ltp-deploy inspect out/sst2-onnx --json
"""


def inspect(
    path: Annotated[Path, typer.Argument(help="Checkpoint folder, export folder, or graph file (.onnx/.xml).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    info = describe(path)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(path), show_header=False)
    for key, value in info.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    Console().print(table)


def describe(path: Path) -> dict:
    """A flat dict describing a checkpoint or an export (used by ``inspect`` and its tests)."""
    from ltp_deploy.artifact import is_export, open_artifact
    from ltp_deploy.checkpoint import CONFIG_FILE, load_checkpoint
    from ltp_deploy.errors import LtpDeployError
    from ltp_deploy.paths import refuse_symlink_loop

    refuse_symlink_loop(path, "Checkpoint or export")
    if not path.exists():
        raise LtpDeployError(f"{path} does not exist: pass a checkpoint folder, an export folder or a graph file.")
    if path.is_dir() and (path / CONFIG_FILE).is_file() and not is_export(path):
        return load_checkpoint(path).describe()
    art = open_artifact(path)
    meta, spec = art.metadata, art.spec
    return {
        "path": str(art.graph),
        "kind": f"exported graph ({meta.get('target', art.graph.suffix.lstrip('.'))})",
        "architecture": art.config.arch,
        "layers": art.config.num_layers,
        "pruning": art.pruning,
        "thresholds": list(spec.thresholds) if spec and spec.thresholds else None,
        "keep_rates": list(spec.keep_rates) if spec and spec.keep_rates else None,
        "bin_gates": [None if g is None else "".join(map(str, g)) for g in spec.bin_gates]
        if spec and spec.bin_gates else None,
        "pruning_layers": spec.pruning_layers() if spec else [],
        "n_ref": spec.n_ref if spec else None,
        "opset": meta.get("opset"),
        "precision": meta.get("precision"),
        "single_sequence": art.single_sequence,
        "batch1_graph": str(art.batch1) if art.batch1 else None,
        "graph_io": _graph_io(art.graph),
        "source": meta.get("source"),
        "quantization": meta.get("quantization"),
        "validation": {k: (meta.get("validation") or {}).get(k) for k in ("runtime", "passed", "max_abs_diff", "atol",
                                                                          "agreement")
                       if k in (meta.get("validation") or {})},
        "versions": meta.get("versions"),
    }


def _graph_io(graph: Path) -> dict:
    """Inputs and outputs with their (symbolic) shapes, read from the graph file itself."""
    from ltp_deploy.errors import LtpDeployError

    try:
        return _onnx_io(graph) if graph.suffix == ".onnx" else _openvino_io(graph)
    except Exception as e:  # noqa: BLE001 - a damaged graph fails in the parser's own ways
        raise LtpDeployError(f"{graph} cannot be read as a {graph.suffix} graph ({type(e).__name__}): the file is "
                             "damaged or truncated; re-export it with `ltp-deploy export`.") from None


def _onnx_io(graph: Path) -> dict:
    import onnx

    model = onnx.load(str(graph), load_external_data=False)

    def shape(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {"inputs": {i.name: shape(i) for i in model.graph.input},
            "outputs": {o.name: shape(o) for o in model.graph.output}}


def _openvino_io(graph: Path) -> dict:
    import openvino as ov

    model = ov.Core().read_model(str(graph))
    return {"inputs": {p.get_any_name(): str(p.get_partial_shape()) for p in model.inputs},
            "outputs": {p.get_any_name(): str(p.get_partial_shape()) for p in model.outputs}}
