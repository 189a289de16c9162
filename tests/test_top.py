"""ToP run folders: loaded without unpickling code, their rank-bin rule exported, and compared with what ToP's
original code computed on the same tiny models (tests/fixtures/top, made by tests/fixtures/top/make_fixtures.py
from microsoft/Moonlit's ToP/models/modeling_bert.py; see its README)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, run_main
from ltp_deploy.checkpoint import load_checkpoint
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.pruner import rank_bin_table

FIXTURES = REPO / "tests" / "fixtures" / "top"
NAMES = ("one-layer", "several", "switched-off")
ONE_ACTIVE = ("one-layer", "switched-off")  # one pruning layer on: dropping equals ToP's masking


def _expected(name: str) -> dict:
    return json.loads((FIXTURES / name / "expected.json").read_text())


def _feed(ids):
    ids = np.asarray([ids], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def _torch_run(ckpt, feed):
    with torch.no_grad():
        logits, kept = ckpt.model(*(torch.from_numpy(feed[k]) for k in ("input_ids", "attention_mask",
                                                                          "token_type_ids")))
    return logits.numpy(), kept.numpy()


@pytest.mark.parametrize("name", NAMES)
def test_loads_as_a_rank_bin_spec(name):
    expected = _expected(name)
    ckpt = load_checkpoint(FIXTURES / name)
    assert ckpt.format == "top" and ckpt.spec.mode == "rank_bins"
    layers = expected["num_hidden_layers"]
    active = [loc - 1 for loc, on in zip(expected["prune_location"], expected["pruner_z"]) if on]
    assert ckpt.spec.pruning_layers() == active
    for loc, on, gates in zip(expected["prune_location"], expected["pruner_z"], expected["token_z"]):
        assert ckpt.spec.bin_gates[loc - 1] == (tuple(int(g) for g in gates) if on else None)
    assert len(ckpt.spec.bin_gates) == layers


@pytest.mark.parametrize("name", NAMES)
def test_kept_counts_and_logits_match_the_original_code(name):
    """Every row run alone: ToP's count at layer i's input is the count after layer i - 1 here; logits within 1e-5
    where one pruning layer is active (ToP's pruned tokens go on voting as queries once two are)."""
    from ltp_deploy.reference import dropping_kept

    expected = _expected(name)
    ckpt = load_checkpoint(FIXTURES / name)
    worst, differ = 0.0, {}
    for row in expected["rows"]:
        feed = _feed(row["input_ids"])
        logits, kept = _torch_run(ckpt, feed)
        assert kept[0, :-1].tolist() == row["kept"][1:], row["text"]
        worst = max(worst, float(np.abs(logits[0] - np.asarray(row["logits"], np.float32)).max()))
        _, kept_sets = dropping_kept(ckpt.model, *(torch.from_numpy(feed[k]) for k in feed))
        for i, mask in enumerate(row["masks"]):
            if mask is not None:  # ToP's keep decision at layer i's input, CLS left out: this model's layer i - 1
                differ[i] = differ.get(i, 0) + (kept_sets[0, i - 1, 1:].int().tolist() != mask)
    first = min(loc for loc, on in zip(expected["prune_location"], expected["pruner_z"]) if on)
    assert differ[first] == 0, differ  # the first active pruning layer decides exactly as ToP does
    if name in ONE_ACTIVE:  # logits are ~1e-2 here: an absolute 1e-6
        assert worst <= 1e-6 and not any(differ.values()), (worst, differ)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_exports_keep_the_original_decisions(target, tmp_path):
    from ltp_deploy.api import export
    from ltp_deploy.runtimes import open_runtime

    for name in NAMES:
        out = tmp_path / f"{name}-{target}"
        export(FIXTURES / name, out, target=target)
        runtime = open_runtime(out)
        expected = _expected(name)
        for row in expected["rows"]:
            logits, kept = runtime.run(_feed(row["input_ids"]))
            assert kept[0, :-1].tolist() == row["kept"][1:], (name, row["text"])
            if name in ONE_ACTIVE:
                assert np.abs(logits[0] - np.asarray(row["logits"], np.float32)).max() <= 1e-6


def test_bin_table_is_tops_float32_arithmetic():
    """The table against ToP's expression evaluated in numpy float32, one rank at a time (bin edges included)."""
    gates = (1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1)
    table = rank_bin_table(gates, 64).numpy()
    for n in range(64):
        for r in range(64):
            x = np.float32(r) / (np.float32(n) + np.float32(1e-6))
            b = int(np.float32(min(max(x, np.float32(0)), np.float32(1))) * np.float32(len(gates)))
            assert table[n, r] == bool((*gates, 0)[b]), (n, r)


def _copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    return folder


def test_l0_module_pickle_never_runs(tmp_path, monkeypatch, capsys):
    """The fixture's l0_module.pt writes L0_MODULE_WAS_UNPICKLED into the working directory when unpickled;
    inspect and load read the folder without it."""
    folder = _copy("one-layer", tmp_path)
    monkeypatch.chdir(tmp_path)
    load_checkpoint(folder)
    code, out, _ = run_main(monkeypatch, capsys, "inspect", folder)
    assert code == 0 and "rank_bins" in out and "pruning_layers" in out
    assert not (tmp_path / "L0_MODULE_WAS_UNPICKLED").exists()


@pytest.mark.parametrize("case, fragment", [
    ("missing", "without zs.pt"), ("none", "holds None"), ("structured", "structured-pruning gates"),
    ("garbage", "not ToP's gates"), ("too many", "pruning layers for a 4-layer model"),
    ("missing, plain BERT config", "without zs.pt"),
])
def test_bad_gates_are_one_sentence(case, fragment, tmp_path):
    folder = _copy("one-layer", tmp_path)
    gates = folder / "zs.pt"
    zs = torch.load(gates, weights_only=True)
    if case.startswith("missing"):
        gates.unlink()
        if case == "missing, plain BERT config":  # l0_module.pt alone still marks a ToP run
            config = json.loads((folder / "config.json").read_text())
            config["architectures"] = ["BertForSequenceClassification"]
            (folder / "config.json").write_text(json.dumps(config))
    elif case == "none":
        torch.save(None, gates)
    elif case == "structured":
        torch.save({**zs, "head_z": torch.ones(4, 2)}, gates)
    elif case == "garbage":
        gates.write_bytes(b"not a torch file")
    else:
        torch.save({"token_z": torch.ones(4, 10), "pruner_z": torch.ones(4)}, gates)
    with pytest.raises(LtpDeployError) as err:
        load_checkpoint(folder)
    message = str(err.value)
    assert fragment in message and "\n" not in message, message
    if case.startswith("missing") or case == "none":
        assert "l0_module.forward(training=False)" in message
