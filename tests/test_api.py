"""The Python API (``ltp_deploy.load``, ``TextClassifier``, ``PrunedModelForSequenceClassification``) on real
exports of a small BERT, against transformers' own model of the same folder (the independent reference), and inside
``transformers.pipeline``."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

import ltp_deploy
from ltp_deploy.errors import LtpDeployError

TEXTS = ["a gripping, funny and humane film", "tedious", "the plot goes nowhere, slowly, and then stops",
         "an actor at the top of his game in a film that wastes him", "fine"]


@pytest.fixture(scope="module")
def folders(tiny):
    """A small BERT classifier (HF folder) and its dense and pruned ONNX exports (conftest's ``tiny``)."""
    return tiny


def _transformers_probs(folder, texts) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    enc = AutoTokenizer.from_pretrained(str(folder))(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(model(**enc).logits, dim=-1).numpy()


def test_load_classifies_texts_as_transformers_does(folders):
    clf = ltp_deploy.load(folders["dense"], threads=1)
    got = clf(TEXTS)
    want = _transformers_probs(folders["hf"], TEXTS)
    assert [p.label_id for p in got] == want.argmax(axis=1).tolist()
    assert np.allclose([p.scores for p in got], want, atol=1e-4)
    lengths = [len(clf.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert [p.kept_tokens for p in got] == [[n] * 4 for n in lengths]  # a dense graph keeps every real token
    assert [p.tokens for p in got] == lengths and not any(p.truncated for p in got)
    assert all(p.label == clf.labels[p.label_id] for p in got)


def test_answers_do_not_depend_on_the_batch(folders):
    clf = ltp_deploy.load(folders["pruned"], threads=1)
    alone = [clf(t)[0] for t in TEXTS]
    together = clf(TEXTS, batch_size=32)
    assert [p.kept_tokens for p in alone] == [p.kept_tokens for p in together]
    assert any(p.kept_tokens[-1] < p.tokens for p in together)  # it prunes: the kept counts were tested
    assert np.allclose([p.scores for p in alone], [p.scores for p in together], atol=1e-5)


def test_truncation_pairs_and_labels(folders):
    clf = ltp_deploy.load(folders["dense"], max_length=8, labels=("neg", "pos"))
    long, short = clf(["word " * 50, "fine"])
    assert long.truncated and long.tokens == 8 and not short.truncated
    assert {long.label, short.label} <= {"neg", "pos"}
    (pair,) = clf([("a man eats", "he eats")])  # 7 tokens: text and pair, each with its separator
    assert pair.tokens == len(clf.tokenizer("a man eats", "he eats")["input_ids"]) and not pair.truncated
    (cut,) = clf([("a man is eating a sandwich", "someone eats")])
    assert cut.truncated and cut.tokens == 8


def test_one_classifier_serves_many_threads(folders):
    clf = ltp_deploy.load(folders["pruned"], threads=1)
    serial = clf(TEXTS)
    results, errors = [None] * 8, []

    def work(i):
        try:
            results[i] = clf(TEXTS[i % 5:] + TEXTS[:i % 5], batch_size=2)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, got in enumerate(results):
        want = serial[i % 5:] + serial[:i % 5]
        assert [(p.label_id, p.kept_tokens) for p in got] == [(p.label_id, p.kept_tokens) for p in want]


def test_pipeline_accepts_the_export(folders, caplog):
    from transformers import pipeline

    model = ltp_deploy.PrunedModelForSequenceClassification.from_pretrained(folders["dense"], threads=1)
    classify = pipeline("text-classification", model=model, tokenizer=model.tokenizer)
    got = classify(TEXTS, batch_size=2)
    want = _transformers_probs(folders["hf"], TEXTS)
    assert [model.config.label2id[g["label"]] for g in got] == want.argmax(axis=1).tolist()
    assert np.allclose([g["score"] for g in got], want.max(axis=1), atol=1e-4)
    assert "not supported" not in caplog.text  # registered with the Auto classes, so the pipeline knows it
    pruned = ltp_deploy.PrunedModelForSequenceClassification.from_pretrained(folders["pruned"])
    clf = ltp_deploy.load(folders["pruned"])
    for text in TEXTS:
        (answer,) = pipeline("text-classification", model=pruned, tokenizer=pruned.tokenizer)(text)
        (direct,) = clf(text)
        assert answer["label"] == direct.label and answer["score"] == pytest.approx(max(direct.scores), abs=1e-6)
        assert pruned.last_kept_counts[0].tolist() == direct.kept_tokens
    with pytest.raises(LtpDeployError, match="load it with device='cuda'"):
        pruned.to("cuda")


@pytest.mark.parametrize("call, message", [
    (lambda clf: clf([]), "No texts given"),
    (lambda clf: clf(["   "]), "An input text is empty"),
    (lambda clf: clf([3]), "not a string or a (text, pair) tuple"),
    (lambda clf: clf(["ok"], batch_size=0), "batch_size must be at least 1"),
])
def test_bad_calls_raise_one_sentence(folders, call, message):
    with pytest.raises(LtpDeployError) as e:
        call(ltp_deploy.load(folders["dense"]))
    assert message in str(e.value)


def test_bad_loads_raise_one_sentence(folders, tmp_path):
    with pytest.raises(LtpDeployError, match="max_length must lie in"):
        ltp_deploy.load(folders["dense"], max_length=100_000)
    with pytest.raises(LtpDeployError, match="label names given for a model with 2 outputs"):
        ltp_deploy.load(folders["dense"], labels=("a", "b", "c"))
    with pytest.raises(LtpDeployError, match="does not exist"):
        ltp_deploy.load(tmp_path / "missing")


@pytest.mark.slow
def test_export_is_one_entry_for_every_target(folders, tmp_path):
    want = _transformers_probs(folders["hf"], TEXTS)
    for target in ("onnx", "openvino"):
        folder = ltp_deploy.export(folders["hf"], tmp_path / target, target=target, dense=True)
        got = ltp_deploy.load(folder, threads=1)(TEXTS)
        assert [p.label_id for p in got] == want.argmax(axis=1).tolist()
        assert np.allclose([p.scores for p in got], want, atol=1e-4)


@pytest.mark.parametrize("options, message", [
    ({"target": "tflite"}, "Unknown target 'tflite': use one of onnx, openvino."),
    ({"target": "onnx", "precision": "fp16"}, "--precision fp16 is an OpenVINO IR option, not onnx"),
    ({"target": "openvino", "opset": 18}, "--opset applies to --target onnx only"),
    ({"max_metric_drop": 1.0}, "--max-metric-drop applies to --precision int8"),
])
def test_export_refuses_bad_options_before_writing(folders, tmp_path, options, message):
    with pytest.raises(LtpDeployError, match=re.escape(message)):
        ltp_deploy.export(folders["hf"], tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()
