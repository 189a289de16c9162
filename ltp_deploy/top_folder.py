"""ToP run folders (Li et al., KDD'23; code in microsoft/Moonlit, ``ToP/``): their gates as a ``rank_bins`` spec.

A ToP run leaves ``config.json`` (a plain BERT config, ``architectures: ["ToPBertForSequenceClassification"]``),
``pytorch_model.bin`` (BERT's keys), ``zs.pt`` and ``l0_module.pt``. ``zs.pt`` is what ToP's own evaluation feeds
the model: ``token_z`` (pruning layers x ``bin_num``, 0/1) and ``pruner_z`` (one 0/1 per pruning layer); it is
read with ``torch.load(weights_only=True)``. ``l0_module.pt`` is a pickled Python object (code) and is never
opened. The pruning layers are not stored: ToP's ``run_glue_prune.py`` puts ``P`` gate rows on the last ``P``
layers (``range(11 - P + 1, 12)`` for its 12-layer BERT, i.e. ``range(L - P, L)``).

ToP decides at layer ``i``'s input from layer ``i - 1``'s attention; ltp-deploy drops right after layer ``i - 1``'s
attention block, so ToP's layer ``i`` is this spec's layer ``i - 1`` (the tokens that stay compute the same thing).

Example::

    if is_top_folder(hf_config, folder):
        state, spec = top_state_and_spec(state, folder, num_layers=12)
"""

from __future__ import annotations

from pathlib import Path

import torch

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.spec import PruningSpec

TOP_ARCHITECTURE = "ToPBertForSequenceClassification"
GATES_FILE = "zs.pt"
L0_FILE = "l0_module.pt"
_MAKE_GATES = ("in ToP's environment run `zs = l0_module.forward(training=False); torch.save(zs, 'zs.pt')` "
               "(ltp-deploy never unpickles l0_module.pt: a pickle runs code)")
_STRUCTURED = ("head_z", "head_layer_z", "intermediate_z", "mlp_z", "hidden_z")


def is_top_folder(hf_config: dict, folder: Path) -> bool:
    """A ToP run: its config names ToP's classifier, or it holds ToP's gates or L0 module."""
    return (TOP_ARCHITECTURE in (hf_config.get("architectures") or [])
            or (folder / GATES_FILE).is_file() or (folder / L0_FILE).is_file())


def top_state_and_spec(state: dict, folder: Path, num_layers: int) -> tuple[dict, PruningSpec]:
    """BERT's state dict (layer-distillation extras dropped) and the ``rank_bins`` spec of ``folder``'s gates.

    Raises:
        LtpDeployError: no ``zs.pt``, one that is not ToP's gates, structured-pruning gates, or more gate rows
            than layers after the first.
    """
    token_z, pruner_z = _read_gates(folder)
    rows = token_z.shape[0]
    if rows >= num_layers:
        raise LtpDeployError(f"{folder / GATES_FILE} holds {rows} pruning layers for a {num_layers}-layer model: "
                             "ToP prunes at most the last L - 1 layers; the gates belong to another model.")
    locations = list(range(num_layers - rows, num_layers))
    gates: list = [None] * num_layers
    for row, location in enumerate(locations):
        if pruner_z[row] > 0:  # a switched-off pruner drops nothing, whatever its bin gates say
            gates[location - 1] = tuple(int(v > 0) for v in token_z[row].tolist())
    source = {"format": "top", "prune_location": locations, "pruner_z": [int(v > 0) for v in pruner_z.tolist()],
              "bin_num": int(token_z.shape[1])}
    state = {k: v for k, v in state.items() if not k.startswith("layer_transformation.")}
    return state, PruningSpec.rank_bins(gates, source=source)


def _read_gates(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    path = folder / GATES_FILE
    if not path.is_file():
        raise LtpDeployError(f"{folder} is a ToP run without {GATES_FILE} (its gates): {_MAKE_GATES}.")
    try:
        zs = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure: not plain tensors
        raise LtpDeployError(f"{path} is not ToP's gates saved with torch.save ({type(e).__name__}): "
                             f"{_MAKE_GATES}.") from e
    if zs is None:  # what ToP's load_zs answers by unpickling l0_module.pt
        raise LtpDeployError(f"{path} holds None instead of gates: {_MAKE_GATES}.")
    if not isinstance(zs, dict):
        raise LtpDeployError(f"{path} holds a {type(zs).__name__}, not ToP's gates dict: {_MAKE_GATES}.")
    structured = [k for k in _STRUCTURED if k in zs]
    if structured:
        raise LtpDeployError(f"{path} holds structured-pruning gates ({', '.join(structured)}): ltp-deploy loads "
                             "ToP runs that prune tokens only; export the token-pruning run.")
    token_z, pruner_z = zs.get("token_z"), zs.get("pruner_z")
    if not (isinstance(token_z, torch.Tensor) and isinstance(pruner_z, torch.Tensor) and token_z.dim() == 2
            and pruner_z.dim() == 1 and token_z.shape[0] == pruner_z.shape[0] > 0 and token_z.shape[1] > 0):
        raise LtpDeployError(f"{path} lacks ToP's token_z (pruning layers x bins) and pruner_z (one per pruning "
                             f"layer): {_MAKE_GATES}.")
    if not (torch.isfinite(token_z).all() and torch.isfinite(pruner_z).all()):
        raise LtpDeployError(f"{path} holds NaN or inf gates: the run diverged; take an earlier {GATES_FILE}.")
    return token_z.float(), pruner_z.float()
