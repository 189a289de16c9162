"""``Runtime.run`` checks its batch before any runtime sees it: a bad batch is one ``LtpDeployError`` sentence.

Every case runs on the real exported graphs of ``tests/test_runtimes.py`` (the MiniLM and RoBERTa subjects, shared
exports) in ONNX Runtime CPU, OpenVINO (IR) and torch. Each bad batch must be refused with one line naming the
problem, and the runtime's own inference (``_infer``) must never be reached. The limits in the expected messages
come from the checkpoint's ``EncoderConfig``, the graphs' limits from their export metadata. A bare graph with no
metadata beside it still runs, and reads its limits from its own embedding tables (``runtimes.tables``).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.runtimes import open_runtime
from ltp_deploy.runtimes.inputs import InputLimits

from helpers import Subject, subject_for

ADAPTERS = {
    "onnxruntime-cpu": lambda s: open_runtime(s.onnx),
    "openvino": lambda s: open_runtime(s.xml),
    "torch": lambda s: open_runtime(s.folder),
}
_RUNTIMES: dict[tuple[str, str], object] = {}


@pytest.fixture(scope="module")
def minilm(tmp_path_factory, minilm_dir, make_roberta) -> Subject:
    return subject_for("minilm", tmp_path_factory, minilm_dir, make_roberta)


@pytest.fixture(params=list(ADAPTERS))
def runtime(request, subject):
    """The subject opened in each adapter (once per session)."""
    key = (subject.name, request.param)
    if key not in _RUNTIMES:
        _RUNTIMES[key] = ADAPTERS[request.param](subject)
    return _RUNTIMES[key]


def copy(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in batch.items()}


def refused(runtime, batch, monkeypatch) -> str:
    """The one-line message ``runtime.run(batch)`` raises, checked before the runtime itself was called."""
    def reached(feed):
        raise AssertionError(f"{runtime.name} ran the bad batch: the check must come before the runtime")

    monkeypatch.setattr(runtime, "_infer", reached)
    with pytest.raises(LtpDeployError) as err:
        runtime.run(batch)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def padded_row(batch) -> int:
    """A row with padding in the subject's mixed batch (the tests below need one)."""
    rows = np.flatnonzero(batch["attention_mask"][:, -1] == 0)
    assert rows.size, "the mixed batch should hold padded rows"
    return int(rows[0])


# Each case: (batch, cfg) -> (bad batch, fragments its message must hold). ``batch`` is the subject's mixed,
# right-padded batch; ``cfg`` the checkpoint's EncoderConfig.

def _without(name):
    def case(batch, cfg):
        return {k: v for k, v in batch.items() if k != name}, [repr(name), "input_ids, attention_mask"]
    return case


def _one_dimensional(batch, cfg):
    return {k: v[0] for k, v in batch.items()}, ["input_ids", "(batch, length)", "[None]"]


def _float_ids(batch, cfg):
    return {**batch, "input_ids": batch["input_ids"].astype(np.float32)}, ["input_ids", "float32", "integer"]


def _string_ids(batch, cfg):
    return {**batch, "input_ids": batch["input_ids"].astype(str)}, ["input_ids", "dtype", "integer"]


def _object_ids(batch, cfg):
    return {**batch, "input_ids": batch["input_ids"].astype(object)}, ["input_ids", "object"]


def _ragged_ids(batch, cfg):
    ids = [row[:len(row) - i].tolist() for i, row in enumerate(batch["input_ids"])]
    return {**batch, "input_ids": ids}, ["input_ids", "same length"]


def _mask_shape(batch, cfg):
    mask = batch["attention_mask"][:, :-1]
    return {**batch, "attention_mask": mask}, ["attention_mask", str(mask.shape), str(batch["input_ids"].shape)]


def _no_rows(batch, cfg):
    return {k: v[:0] for k, v in batch.items()}, ["input_ids", "no rows"]


def _no_tokens(batch, cfg):
    return {k: v[:, :0] for k, v in batch.items()}, ["input_ids", "length 0"]


def _id(value):
    def case(batch, cfg):
        bad = copy(batch)
        bad["input_ids"][0, 1] = value(cfg)
        return bad, ["input_ids", str(value(cfg)), f"[0, {cfg.vocab_size})"]
    return case


def _too_long(batch, cfg):
    n = cfg.max_length + 1
    bad = {"input_ids": np.full((1, n), batch["input_ids"][0, 0]), "attention_mask": np.ones((1, n), np.int64),
           "token_type_ids": np.zeros((1, n), np.int64)}
    return bad, [str(n), str(cfg.max_length), f"truncate to {cfg.max_length} tokens"]


def _mask_two(batch, cfg):
    bad = copy(batch)
    bad["attention_mask"][0, 0] = 2
    return bad, ["attention_mask", "2", "0 for padding"]


def _empty_row(batch, cfg):
    bad = copy(batch)
    bad["attention_mask"][1] = 0
    return bad, ["Row 1", "all zeros", "empty text"]


def _left_padded(batch, cfg):
    bad, row = copy(batch), padded_row(batch)
    for k in bad:
        bad[k][row] = bad[k][row][::-1]
    return bad, [f"Row {row}", "right padding", 'padding_side="right"']


BAD = {
    "missing input_ids": _without("input_ids"),
    "missing attention_mask": _without("attention_mask"),
    "1-D arrays": _one_dimensional,
    "float ids": _float_ids,
    "string ids": _string_ids,
    "object ids": _object_ids,
    "ragged ids": _ragged_ids,
    "mask shape": _mask_shape,
    "batch of 0 rows": _no_rows,
    "length 0": _no_tokens,
    "id -1": _id(lambda cfg: -1),
    "id vocab_size": _id(lambda cfg: cfg.vocab_size),
    "max_length + 1": _too_long,
    "mask value 2": _mask_two,
    "all-zero mask row": _empty_row,
    "left-padded row": _left_padded,
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_batch_is_one_clear_error(subject, runtime, case, monkeypatch):
    batch, fragments = BAD[case](subject.batches["mixed"], subject.ckpt.config)
    message = refused(runtime, batch, monkeypatch)
    for fragment in fragments:
        assert fragment in message, f"{runtime.name}, {case}: {fragment!r} not in {message!r}"


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.slow
def test_token_type_out_of_range(minilm, adapter, monkeypatch):
    runtime = ADAPTERS[adapter](minilm)
    bad = copy(minilm.batches["mixed"])
    bad["token_type_ids"][0, 1] = minilm.ckpt.config.type_vocab_size
    message = refused(runtime, bad, monkeypatch)
    assert "token_type_ids" in message and f"[0, {minilm.ckpt.config.type_vocab_size})" in message, message


def test_limits_come_from_the_model(subject, runtime):
    """Graphs read them from their export metadata, torch from its model; both equal the checkpoint's config."""
    cfg = subject.ckpt.config
    assert runtime.limits == InputLimits(cfg.vocab_size, cfg.type_vocab_size, cfg.max_length)


# --------------------------------------------------------------------------------------------- good batches

def _agree(subject, got, want_batch, atol=1e-4):
    want_logits, want_kept = subject.expected(want_batch)
    logits, kept = got
    assert logits.dtype == np.float32 and kept.dtype == np.int64
    assert logits.shape == want_logits.shape
    assert float(np.abs(logits - want_logits).max()) <= atol
    assert np.array_equal(kept, want_kept), (kept.tolist(), want_kept.tolist())


@pytest.mark.parametrize("batch", ["b1", "mixed"])
def test_good_batch_runs_and_agrees_with_torch(subject, runtime, batch):
    good = subject.batches[batch]
    _agree(subject, runtime.run({**good, "labels": np.zeros(len(good["input_ids"]))}), good)  # extra key ignored


def test_bool_mask_and_narrow_ints_run(subject, runtime):
    good = subject.batches["mixed"]
    narrow = {"input_ids": good["input_ids"].astype(np.int32), "attention_mask": good["attention_mask"].astype(bool),
              "token_type_ids": good["token_type_ids"].astype(np.uint8)}
    _agree(subject, runtime.run(narrow), good)


def test_lists_run(subject, runtime):
    """What a tokenizer returns without return_tensors: nested lists."""
    good = subject.batches["mixed"]
    _agree(subject, runtime.run({k: v.tolist() for k, v in good.items()}), good)


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.slow
def test_missing_token_type_ids_are_zeros(minilm, adapter):
    runtime = ADAPTERS[adapter](minilm)
    assert "token_type_ids" in runtime.input_names
    good = copy(minilm.batches["mixed"])
    good["token_type_ids"][:] = 0
    without = {k: v for k, v in good.items() if k != "token_type_ids"}
    logits, kept = runtime.run(without)
    want_logits, want_kept = runtime.run(good)
    assert np.array_equal(logits, want_logits) and np.array_equal(kept, want_kept)
    _agree(minilm, (logits, kept), good)


def test_max_length_itself_runs(subject, runtime):
    """The length limit is inclusive: a row of exactly max_length tokens runs."""
    n = subject.ckpt.config.max_length
    good = subject.batches["b1"]["input_ids"][0]  # CLS, words, SEP
    ids = np.random.default_rng(0).choice(good[1:-1], size=(1, n))
    ids[0, 0], ids[0, -1] = good[0], good[-1]
    batch = {"input_ids": ids, "attention_mask": np.ones((1, n), np.int64),
             "token_type_ids": np.zeros((1, n), np.int64)}
    _agree(subject, runtime.run(batch), batch)


# ------------------------------------------------------------------------------------ a graph without metadata

BARE = {
    "onnxruntime-cpu": lambda s, folder: open_runtime(_bare(folder, s.onnx)),
    "openvino-onnx": lambda s, folder: open_runtime(_bare(folder, s.onnx), backend="openvino"),
    "openvino-xml": lambda s, folder: open_runtime(_bare(folder, s.xml, s.xml.with_suffix(".bin"))),
}


def _bare(folder, graph, *more):
    folder.mkdir()
    for file in (graph, *more):
        shutil.copy(file, folder / file.name)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in (graph, *more))
    return folder / graph.name


@pytest.mark.parametrize("adapter", list(BARE))
def test_bare_graph_runs_and_still_checks(roberta_subject, adapter, tmp_path, monkeypatch):
    subject = roberta_subject
    runtime = BARE[adapter](subject, tmp_path / "bare")
    assert runtime.limits == InputLimits.of(subject.ckpt.config), "no metadata: the limits come from the graph"
    good = subject.batches["mixed"]
    _agree(subject, runtime.run(good), good)
    message = refused(runtime, {k: v[0] for k, v in good.items()}, monkeypatch)
    assert "input_ids" in message and "[None]" in message, message
    batch, fragments = _left_padded(good, subject.ckpt.config)
    message = refused(runtime, batch, monkeypatch)
    assert all(f in message for f in fragments), message


@pytest.fixture(scope="module")
def roberta_subject(tmp_path_factory, minilm_dir, make_roberta) -> Subject:
    return subject_for("roberta", tmp_path_factory, minilm_dir, make_roberta)


# ---------------------------------------------------------- a bare graph's limits, read from its embedding tables

EXPORTED = {  # the same graph opened with its export metadata beside it
    "onnxruntime-cpu": lambda s: open_runtime(s.onnx),
    "openvino-onnx": lambda s: open_runtime(s.onnx, backend="openvino"),
    "openvino-xml": lambda s: open_runtime(s.xml),
}


def _bare_bad(batch, cfg):
    """The three batches a bare graph used to pass on (ORT: raw InvalidArgument; OpenVINO: silent logits)."""
    ids = copy(batch)
    ids["input_ids"][0, 1] = cfg.vocab_size
    n = 600
    long = {"input_ids": np.full((1, n), batch["input_ids"][0, 0]), "attention_mask": np.ones((1, n), np.int64),
            "token_type_ids": np.zeros((1, n), np.int64)}
    types = copy(batch)
    types["token_type_ids"][0, 1] = 5
    return {"id vocab_size": (ids, ["input_ids", str(cfg.vocab_size), f"[0, {cfg.vocab_size})"]),
            "600 tokens": (long, ["600 tokens", f"maximum input length of {cfg.max_length}"]),
            "token type 5": (types, ["token_type_ids", "5", f"[0, {cfg.type_vocab_size})"])}


@pytest.mark.parametrize("adapter", list(BARE))
@pytest.mark.parametrize("name", [pytest.param("minilm", marks=pytest.mark.slow), "roberta"])
def test_bare_graph_checks_its_own_limits(name, adapter, tmp_path, monkeypatch, tmp_path_factory, minilm_dir,
                                          make_roberta):
    """model.onnx or model.xml + .bin alone in a folder: the limits come from the word, position and token-type
    tables (RoBERTa's pad offset included), bad batches are one sentence, a good batch equals the export's answer."""
    subject = subject_for(name, tmp_path_factory, minilm_dir, make_roberta)
    cfg = subject.ckpt.config
    runtime = BARE[adapter](subject, tmp_path / "bare")
    assert runtime.limits == InputLimits.of(cfg)
    key = (subject.name, f"exported {adapter}")
    exported = _RUNTIMES[key] = _RUNTIMES.get(key) or EXPORTED[adapter](subject)
    same_graph = getattr(exported, "batched", exported)  # an export routes batches of one to its batch-1 graph
    for batch in ("b1", "mixed"):
        good = subject.batches[batch]
        logits, kept = runtime.run(good)
        want_logits, want_kept = same_graph.run(good)
        assert np.allclose(logits, want_logits, rtol=0, atol=1e-6) and np.array_equal(kept, want_kept)
    for case, (bad, fragments) in _bare_bad(subject.batches["mixed"], cfg).items():
        if case == "token type 5" and "token_type_ids" not in runtime.input_names:
            continue  # RoBERTa's graph takes no token types: the key is ignored
        with monkeypatch.context() as patch:
            message = refused(runtime, bad, patch)
        assert all(f in message for f in fragments), (case, message)
