"""A checkpoint folder's weight files, read without running code and checked before anything uses them.

* ``read_weights``: ``model.safetensors`` (or its sharded index) or ``pytorch_model.bin`` (``torch.load`` with
  ``weights_only=True``: a pickle never runs code). A folder holding both is read from both: when they agree,
  safetensors is used silently; when they differ, the folder is refused, naming the file to delete.
* ``refuse_non_finite``: a NaN or inf anywhere in the weights is refused with the tensor's name, at load time,
  so that no command (export, inspect, check, train, calibrate) works on a broken model and blames something else.

Example::

    state = read_weights(Path("runs/sst2-ltp"))     # {name: tensor}, on the CPU
    refuse_non_finite(state, Path("runs/sst2-ltp"))
"""

from __future__ import annotations

from pathlib import Path

import torch

from ltp_deploy.errors import LtpDeployError

SAFETENSORS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict of ``folder``: its safetensors weights, else its pickled ``pytorch_model.bin``.

    Raises:
        LtpDeployError: no weights, a file that is not a readable state dict of tensors, or two weight files
            (safetensors and ``pytorch_model.bin``) that hold different tensors.
    """
    has_safetensors = (folder / SAFETENSORS_FILE).is_file() or (folder / INDEX_FILE).is_file()
    has_pickle = (folder / PICKLE_FILE).is_file()
    if not has_safetensors and not has_pickle:
        raise LtpDeployError(f"{folder} has no weights (model.safetensors or pytorch_model.bin): add the weights "
                             "file.")
    state = _read_safetensors(folder) if has_safetensors else _read_pickle(folder / PICKLE_FILE)
    if has_safetensors and has_pickle:
        _refuse_disagreement(folder, state, _read_pickle(folder / PICKLE_FILE))
    return state


def refuse_non_finite(state: dict[str, torch.Tensor], folder: Path, skip: tuple[str, ...] = ()) -> None:
    """Refuse weights holding NaN or inf, naming the first such tensor; keys ending in ``skip`` are not used.

    Raises:
        LtpDeployError: a floating-point tensor of ``state`` holds a NaN or an infinity.
    """
    bad = [k for k, v in state.items() if not k.endswith(skip) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if not bad:
        return
    v = state[bad[0]]
    nan, inf = int(torch.isnan(v).sum()), int(torch.isinf(v).sum())
    raise LtpDeployError(f"Weight {bad[0]!r} in {folder} holds {nan} NaN and {inf} inf of its {v.numel()} values "
                         f"({len(bad)} of {len(state)} tensors hold some), so the checkpoint holds NaN/inf weights: "
                         "retrain or restore it.")


def _read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ltp_deploy.paths import read_json

    if (folder / SAFETENSORS_FILE).is_file():
        files = [folder / SAFETENSORS_FILE]
    else:
        files = [folder / f for f in sorted(set(read_json(folder / INDEX_FILE).get("weight_map", {}).values()))]
    state = {}
    for f in files:
        try:
            state.update(load_file(str(f), device="cpu"))
        except (SafetensorError, OSError, ValueError) as e:
            raise LtpDeployError(f"{f} is not a readable safetensors file ({e}): re-save the weights.") from None
    return state


def _read_pickle(binary: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(binary, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged pickle raises almost anything; all mean the same here
        # torch's own message suggests weights_only=False, which would run the file's code: never quote it.
        raise LtpDeployError(
            f"{binary} cannot be loaded as a state dict of tensors ({type(e).__name__}): it is damaged, or "
            "holds pickled objects other than tensors, which ltp-deploy never unpickles because they can run "
            "code; re-save it with torch.save(model.state_dict()) or as safetensors."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LtpDeployError(f"{binary} does not hold a state dict of tensors: re-save model.state_dict().")
    return state


def _refuse_disagreement(folder: Path, safetensors: dict, pickled: dict) -> None:
    """Two weight files must hold the same tensors (same names, shapes and values; NaN equals NaN)."""
    difference = _first_difference(safetensors, pickled)
    if difference is None:
        return
    first = folder / (SAFETENSORS_FILE if (folder / SAFETENSORS_FILE).is_file() else INDEX_FILE)
    times = {first.name: first.stat().st_mtime, PICKLE_FILE: (folder / PICKLE_FILE).stat().st_mtime}
    older = min(times, key=times.get) if len(set(times.values())) > 1 else None
    which = f"delete the stale one ({older} is the older file)" if older else "delete the one that is not this model's"
    raise LtpDeployError(f"{folder} holds two weight files that disagree ({first.name} and {PICKLE_FILE} "
                         f"{difference}), so which one is the model is unclear: {which} and keep the other.")


def _first_difference(a: dict, b: dict) -> str | None:
    """How two state dicts differ first (``None`` when they are equal), in words."""
    only = sorted(set(a) ^ set(b))
    if only:
        return f"hold different tensors, e.g. {only[0]!r} in only one of them"
    for k in sorted(a):
        x, y = a[k], b[k]
        if x.shape != y.shape:
            return f"differ in the shape of {k!r}: {tuple(x.shape)} and {tuple(y.shape)}"
        if x.dtype != y.dtype and not (x.is_floating_point() and y.is_floating_point()):
            return f"differ in the type of {k!r}"
        if x.is_floating_point():
            x, y = x.float(), y.float()
            same = bool(((x == y) | (torch.isnan(x) & torch.isnan(y))).all())
        else:
            same = torch.equal(x, y)
        if not same:
            return f"differ in the values of {k!r}"
    return None
