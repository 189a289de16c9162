"""``run_check``: the graph, the masked reference and the dense model over one evaluation set, and the gates."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltp_deploy.check.report import difference, fmt, json_float
from ltp_deploy.check.settings import KIND, SCHEMA_VERSION, CheckSettings
from ltp_deploy.errors import LtpDeployError

# ------------------------------------------------------------------------------------------------ inputs

def _read_export(path: Path):
    """The opened export (``ltp_deploy.artifact.Artifact``) of ``path``, or a foreign dense graph (an Optimum
    export, the INT8 peers of ``claims.peers``: no pruning, no metadata); a checkpoint folder is refused."""
    from ltp_deploy.artifact import is_export, is_foreign, open_artifact, open_foreign
    from ltp_deploy.checkpoint import CONFIG_FILE

    if is_foreign(path):
        return open_foreign(path)
    if path.is_dir() and not is_export(path) and (path / CONFIG_FILE).is_file():
        raise LtpDeployError(f"{path} is a checkpoint folder, not an exported graph: export it with "
                             f"`ltp-deploy export {path} -o OUT`, then check OUT with --reference {path}.")
    return open_artifact(path)


def _load_examples(s: CheckSettings):
    from ltp_deploy.data import load_examples

    label_column = s.label_column
    if s.data is not None and s.task is None and label_column is None:
        label_column = "label"
    examples = load_examples(s.data, s.task, text_column=s.text_column, text_pair_column=s.text_pair_column,
                             label_column=label_column)
    if not examples.has_labels:
        raise LtpDeployError(f"{examples.source} has no labels: check needs labelled data; name the label column "
                             "with --label-column.")
    bad = np.flatnonzero(~np.isfinite(examples.labels))  # the file readers refuse these first, naming the line
    if bad.size:
        raise LtpDeployError(f"Row {int(bad[0])} of {examples.source} has the label {examples.labels[bad[0]]}, not a "
                             f"finite number ({bad.size} such rows), so no metric can be measured: fix those labels.")
    if s.max_examples is not None:
        examples = examples.take(s.max_examples)
    return examples


def _align_labels(examples, cfg: dict):
    """Renumber named labels by the model's own ``id2label`` when the data's names are all among them (a file's
    string labels are otherwise numbered in sorted order, which need not be the model's order)."""
    from dataclasses import replace

    names, model_names = examples.label_names, cfg.get("id2label")
    if examples.is_regression or not names or not model_names or not set(names) <= set(model_names):
        return examples
    model_names = list(model_names)
    ids = np.asarray([model_names.index(names[i]) for i in examples.labels], dtype=np.int64)
    return replace(examples, labels=ids, label_names=model_names)


def _check_outputs(cfg: dict, examples, where: str) -> None:
    """The model's outputs must fit the task: one score for regression, a logit per class otherwise."""
    num_labels = int(cfg["num_labels"])
    if examples.is_regression:
        if num_labels != 1:
            raise LtpDeployError(f"{where} is a classifier with {num_labels} outputs but {examples.task or 'the data'}"
                                 " is a regression task (scores): check a regression model (one output) on it.")
        return
    if num_labels == 1:
        raise LtpDeployError(f"{where} is a regression model (one output) but {examples.task or 'the data'} has "
                             "class labels: check a classifier on it.")
    classes = len(examples.label_names) if examples.label_names else int(np.max(examples.labels)) + 1
    if classes > num_labels:
        raise LtpDeployError(f"{where} has {num_labels} outputs but {examples.source} has {classes} classes: "
                             "check the model on the task it was trained for.")


def _refuse_export_as_reference(reference: Path) -> None:
    from ltp_deploy.artifact import is_export, read_metadata

    if is_export(reference):
        source = read_metadata(reference).get("source", {}).get("path", "the checkpoint folder")
        raise LtpDeployError(f"{reference} is an export folder, not a checkpoint: pass as --reference the checkpoint "
                             f"it was exported from ({source}).")


def _gated_metric(s: CheckSettings, examples) -> str:
    """The metric the gates use; a --min-metric outside that metric's range is refused."""
    from ltp_deploy.metrics import METRIC_RANGES, metric_names

    available = metric_names(examples)
    metric = s.metric or available[0]
    if metric not in available:
        raise LtpDeployError(f"{examples.task or examples.source} reports {', '.join(available)}, not {metric!r}: "
                             f"pass --metric {' or --metric '.join(available)}.")
    low, high = METRIC_RANGES[metric]
    if s.min_metric is not None and not low <= s.min_metric <= high:
        raise LtpDeployError(f"--min-metric {s.min_metric:g} lies outside the range of {metric} [{low:g}, {high:g}]: "
                             f"give it as a fraction, e.g. --min-metric 0.9 for 90%.")
    return metric


def _load_reference(reference: Path, export, model: Path):
    """The reference checkpoint, refused unless it is the one the graph was exported from, with the same spec."""
    from ltp_deploy.checkpoint import load_checkpoint

    _refuse_export_as_reference(reference)
    ckpt = load_checkpoint(reference)
    ref, cfg = ckpt.config, export.config
    for key in ("arch", "vocab_size", "hidden_size", "num_layers", "num_labels"):
        if getattr(cfg, key) != getattr(ref, key):
            raise LtpDeployError(f"{model} ({key} {getattr(cfg, key)}) cannot be compared with {reference} ({key} "
                                 f"{getattr(ref, key)}): pass the checkpoint the graph was exported from as --reference.")
    # The spec first: a dense twin or another spec leaves a learned scorer out, so its fingerprint differs too.
    if export.spec != ckpt.spec:
        def name(spec):
            return "dense (no spec)" if spec is None else f"{spec.mode} {list(spec.layer_values)}"
        raise LtpDeployError(f"{model} was exported with the spec {name(export.spec)} but {reference} holds "
                             f"{name(ckpt.spec)} (an export with --spec or --dense): check it against a checkpoint "
                             "holding the graph's spec, or without --reference.")
    recorded = export.metadata.get("weights_sha256")
    if recorded is None:
        raise LtpDeployError(f"{model} records no weights fingerprint (it was exported by an older ltp-deploy): "
                             "re-export it to compare it with --reference.")
    if recorded != ckpt.model.weights_fingerprint():
        source = export.metadata.get("source", {}).get("path", "its source checkpoint")
        raise LtpDeployError(f"{model} holds other weights than {reference}: pass as --reference the checkpoint it "
                             f"was exported from ({source}).")
    return ckpt


# ------------------------------------------------------------------------------------------------ the run

@dataclass
class _Outputs:
    """Per-example outputs of one model, in the examples' own order."""

    logits: np.ndarray  # (N, C)
    kept: np.ndarray  # (N, L)

    @classmethod
    def empty(cls, n: int, cfg: dict) -> _Outputs:
        return cls(np.zeros((n, int(cfg["num_labels"])), np.float32), np.zeros((n, int(cfg["num_layers"])), np.int64))


@dataclass
class _Run:
    """Everything the models produced over the evaluation set."""

    lengths: np.ndarray  # (N,) real tokens per example after truncation
    graph: _Outputs
    reference: _Outputs | None  # the masked rule with the checkpoint's spec
    dense: _Outputs | None  # the checkpoint with pruning off
    cls_pruned: np.ndarray  # (N,) bool: the masked rule pruned CLS in some layer


def run_check(s: CheckSettings) -> dict:
    """Run the graph (and, with a reference, the masked rule and the dense model) over the evaluation set,
    evaluate the gates and return the report (see ``CHECK_SCHEMA``).

    All models see the same token ids: the export's tokenizer, truncation at ``max_length``.

    Raises:
        LtpDeployError: a path that is not an export (or not a checkpoint for the reference), missing or
            unlabelled data, a metric the task does not report, a model whose outputs do not fit the task.
    """
    from ltp_deploy.tokenizer import load_tokenizer
    from ltp_deploy.runtimes import open_runtime

    start = time.perf_counter()
    export = _read_export(s.model)
    if export.foreign and s.reference is not None:
        raise LtpDeployError(f"{s.model} is a dense graph from another exporter: it has no pruning to compare with "
                             "a --reference; drop --reference.")
    cfg = _config(export)
    examples = _align_labels(_load_examples(s), cfg)
    metric = _gated_metric(s, examples)
    _check_outputs(cfg, examples, str(s.model))
    max_length = _max_length(s, export.config)
    ckpt = _load_reference(s.reference, export, s.model) if s.reference is not None else None
    tokenizer = load_tokenizer(export.folder, vocab_size=export.config.vocab_size)
    runtime = open_runtime(export.graph, device=s.device, backend=s.backend, precision=s.precision)
    run = _run_models(runtime, export, ckpt, tokenizer, examples, max_length, s.batch_size)

    results = {"graph": _result(examples, run.graph, cfg, run.lengths, metric), "reference": None, "dense": None}
    agreement = drop = None
    if ckpt is not None:
        results["reference"] = _result(examples, run.reference, cfg, run.lengths, metric)
        results["dense"] = _result(examples, run.dense, cfg, run.lengths, metric)
        agreement = _agreement(examples, run.graph, run.reference, run.cls_pruned)
        value = results["graph"]["value"]
        drop = {"vs_reference": difference(results["reference"]["value"], value),
                "vs_dense": difference(results["dense"]["value"], value)}
    int8 = export.metadata.get("precision") == "int8"
    gates = evaluate_gates(s, metric, results, drop, agreement, int8=int8)
    from ltp_deploy.environment import library_versions

    meta = export.metadata
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "passed": all(g["passed"] for g in gates),
        "elapsed_s": round(time.perf_counter() - start, 3),
        "settings": {"device": s.device, "backend": s.backend, "precision": s.precision,
                     "batch_size": s.batch_size, "max_examples": s.max_examples, "metric": metric},
        "model": {"path": str(s.model), "graph": str(export.graph), "target": meta.get("target"),
                  "runtime": runtime.name, "precision": runtime.precision,
                  "pruning": meta.get("pruning", "dense"), "spec": meta.get("spec"), "source": meta.get("source", {}),
                  "weights": meta.get("precision", None if export.foreign else "fp32"),
                  "quantization": meta.get("quantization")},
        "reference": None if ckpt is None else {
            "path": str(s.reference), "pruning": ckpt.spec.mode if ckpt.spec else "dense",
            "spec": ckpt.spec.to_dict() if ckpt.spec else None},
        "data": {"source": examples.source, "task": examples.task, "regression": examples.is_regression,
                 "examples": len(examples), "max_length": max_length, "mean_tokens": json_float(run.lengths.mean()),
                 "truncated": _truncated(tokenizer, examples, max_length)},
        "results": results,
        "agreement": agreement,
        "drop": drop,
        "gates": gates,
        "versions": library_versions(),
    }


def _run_models(runtime, export, ckpt, tokenizer, examples, max_length: int, batch_size: int) -> _Run:
    """One pass over the data in length-sorted batches padded per batch (less padding; results are per example)."""
    import torch

    from ltp_deploy.data import batches, encode
    from ltp_deploy.progress import progress_bar
    from ltp_deploy.reference import hf_twin, learned_scorers, masked_reference

    cfg, n = _config(export), len(examples)
    run = _Run(np.zeros(n, np.int64), _Outputs.empty(n, cfg), None, None, np.zeros(n, dtype=bool))
    if ckpt is not None:
        twin, dense_model = hf_twin(ckpt.model), ckpt.model.with_spec(None).eval()
        scorers = learned_scorers(ckpt.model)
        run.reference, run.dense = _Outputs.empty(n, cfg), _Outputs.empty(n, cfg)
    order = list(batches(examples, batch_size, sort_by_length=True))
    with progress_bar(total=len(order), description="check") as advance:
        for idx in order:
            batch = encode(tokenizer, examples, max_length, indices=idx)  # (B, T_batch) each
            run.lengths[idx] = batch["attention_mask"].sum(axis=1)
            run.graph.logits[idx], run.graph.kept[idx] = _graph_outputs(runtime, batch, cfg, export.graph)
            if ckpt is not None:
                inputs = [torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")]
                with torch.inference_mode():
                    ref = masked_reference(twin, ckpt.spec, *inputs, scorers=scorers)
                    run.reference.logits[idx], run.reference.kept[idx] = ref.logits.numpy(), ref.kept_counts.numpy()
                    run.cls_pruned[idx] = ref.cls_pruned.numpy()
                    logits, kept = dense_model(*inputs)
                    run.dense.logits[idx], run.dense.kept[idx] = logits.numpy(), kept.numpy()
            advance()
    return run


def _config(export) -> dict:
    """The encoder config as the export metadata records it (a foreign graph's from its ``config.json``)."""
    from dataclasses import asdict

    return export.metadata.get("config") or asdict(export.config)


def _max_length(s: CheckSettings, config) -> int:
    from ltp_deploy.data import default_max_length

    limit = config.max_length
    if s.max_length is None:
        return min(limit, default_max_length(s.task))
    if s.max_length > limit:
        raise LtpDeployError(f"--max-length {s.max_length} exceeds the graph's maximum input length of {limit} "
                             "tokens: use a shorter length.")
    return s.max_length


def _graph_outputs(runtime, batch: dict, cfg: dict, graph: Path) -> tuple[np.ndarray, np.ndarray]:
    logits, kept = runtime.run(batch)  # (B, C), (B, L)
    layers = int(cfg["num_layers"])
    if kept.ndim != 2 or kept.shape[1] != layers:
        raise LtpDeployError(f"{graph} returned kept counts of shape {tuple(kept.shape)} for a {layers}-layer model: "
                             "its metadata does not describe it; re-export the folder.")
    return logits, kept


def _truncated(tokenizer, examples, max_length: int) -> int:
    """Examples longer than ``max_length`` tokens (special tokens included), which were cut."""
    enc = tokenizer(examples.texts, examples.text_pairs, truncation=False)
    return int(sum(len(ids) > max_length for ids in enc["input_ids"]))


def _result(examples, out: _Outputs, cfg: dict, lengths: np.ndarray, metric: str) -> dict:
    from ltp_deploy.metrics import compute_metrics, predictions_from_logits
    from ltp_deploy.flops import flops_reduction

    metrics = compute_metrics(examples, predictions_from_logits(out.logits, examples.is_regression))
    return {"metrics": {k: json_float(v) for k, v in metrics.items()}, "value": json_float(metrics[metric]),
            "flops_reduction": json_float(flops_reduction(cfg, lengths, out.kept)),
            "mean_kept_per_layer": [json_float(v) for v in out.kept.mean(axis=0)]}


def _agreement(examples, graph: _Outputs, ref: _Outputs, cls_pruned: np.ndarray) -> dict:
    from ltp_deploy.metrics import predictions_from_logits

    n = len(examples)
    compared = ~cls_pruned  # (N,): the reference kept CLS, so both rules must decide alike
    same = graph.kept == ref.kept  # (N, L)
    matched = compared & same.all(axis=1)  # (N,)
    n_compared = int(compared.sum())
    mismatched = n_compared - int(matched.sum())
    predictions = None
    if not examples.is_regression:
        predictions = float(np.mean(predictions_from_logits(graph.logits, False)
                                    == predictions_from_logits(ref.logits, False)))
    diff = np.abs(graph.logits - ref.logits)[matched]
    return {
        "predictions": json_float(predictions),
        "max_abs_logit_diff": json_float(diff.max()) if diff.size else None,
        "reference_cls_pruned": int(cls_pruned.sum()),
        "reference_cls_pruned_rate": json_float(cls_pruned.sum() / n),
        "compared": n_compared,
        "kept_counts_equal_per_layer": [json_float(v) for v in same[compared].mean(axis=0)] if n_compared
        else [None] * same.shape[1],
        "mismatched": mismatched,
        "decision_mismatch_rate": json_float(mismatched / n_compared) if n_compared else None,
    }


# ------------------------------------------------------------------------------------------------ gates

def evaluate_gates(s: CheckSettings, metric: str, results: dict, drop: dict | None,
                   agreement: dict | None, int8: bool = False) -> list[dict]:
    """The gates the settings ask for, each ``{name, value, bound, op, passed, message}`` (``CHECK_SCHEMA``).

    ``int8``: the graph is an INT8 export, whose kept sets may legitimately differ near a threshold: the
    decision agreement is reported but gated only when ``--max-decision-mismatch`` is given (gate INT8 graphs
    with ``--max-drop`` or ``--min-metric``).

    A value that could not be measured (null: a correlation of constant predictions, or no sequence in which
    the reference kept CLS) fails its gate.
    """
    gates = []
    if s.min_metric is not None:
        gates.append(_gate("min-metric", metric, results["graph"]["value"], ">=", s.min_metric, ""))
    if s.max_drop is not None:
        detail = (f" (graph {fmt(results['graph']['value'])}, reference "
                  f"{fmt(results['reference']['value'])} under the masked rule)")
        gates.append(_gate("max-drop", f"{metric} drop", drop["vs_reference"], "<=", s.max_drop, detail))
    bound = None if int8 and s.max_decision_mismatch is None else s.decision_bound
    if bound is not None:
        detail = (f" ({agreement['mismatched']} of {agreement['compared']} sequences differ in some layer's kept "
                  f"count; {agreement['reference_cls_pruned']} with CLS pruned by the reference not compared)")
        gates.append(_gate("max-decision-mismatch", "decision mismatch rate", agreement["decision_mismatch_rate"],
                           "<=", bound, detail))
    return gates


def _gate(name: str, label: str, value: float | None, op: str, bound: float, detail: str) -> dict:
    """One gate; its message is ``PASS|FAIL name: label value op bound (detail)``."""
    if value is None:
        passed = False
        message = f"FAIL {name}: {label} could not be measured{detail}; bound {op} {fmt(bound)}"
    else:
        passed = value >= bound if op == ">=" else value <= bound
        shown = op if passed else {">=": "<", "<=": ">"}[op]
        message = f"{'PASS' if passed else 'FAIL'} {name}: {label} {fmt(value)} {shown} {fmt(bound)}{detail}"
    return {"name": name, "value": value, "bound": bound, "op": op, "passed": passed, "message": message}

