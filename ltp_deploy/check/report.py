"""What ``ltp-deploy check`` reports: the JSON report's schema, its plain-text summary, the FAIL lines and the
JUnit XML (the gates themselves are computed in ``ltp_deploy.check.run``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ltp_deploy.outputs import JUNIT_SUITE

SUITE_NAME = JUNIT_SUITE  # how outputs.written_by_ltp_deploy recognises our JUnit files

# Every field of the JSON report: dotted path -> "type: meaning". "*" stands for any of graph / reference /
# dense; "[]" marks the items of a list. Types as in ltp_deploy.bench.BENCH_SCHEMA ("|null" where the value may
# be null; "map": free-form keys documented as a whole). Non-finite numbers (a correlation of constant
# predictions) are written as null.
CHECK_SCHEMA: dict[str, str] = {
    "schema_version": "int: version of this layout (1); fields are only added within a version",
    "kind": "str: always 'ltp-deploy-check'",
    "created": "str: ISO 8601 UTC time the check finished",
    "passed": "bool: every gate passed (true when no gate was set)",
    "elapsed_s": "float: wall time of the whole check, seconds",
    "settings": "object: the options of the run",
    "settings.device": "str: 'cpu', 'cuda' or 'cuda:N' (the graph's device; the reference runs on the CPU)",
    "settings.backend": "str|null: the backend asked for (null: chosen from the file type)",
    "settings.precision": "str: compute precision asked of the runtime ('fp32' unless bf16 was asked for)",
    "settings.batch_size": "int: sequences per batch (batches are length-sorted and padded per batch)",
    "settings.max_examples": "int|null: the data was cut to its first N examples",
    "settings.metric": "str: the metric the min-metric and max-drop gates use",
    "model": "object: the exported graph checked",
    "model.path": "str: the path given",
    "model.graph": "str: the graph file run",
    "model.target": "str: 'onnx' or 'openvino'",
    "model.runtime": "str: runtime adapter (e.g. 'onnxruntime-cpu')",
    "model.precision": "str: arithmetic precision the runtime reports",
    "model.pruning": "str: 'dense', 'absolute_threshold' or 'topk'",
    "model.spec": "map|null: the graph's pruning spec from its export metadata",
    "model.source": "map: the checkpoint the export metadata says the graph came from",
    "model.weights": "str|null: the export's stored precision ('fp32', 'fp16' or 'int8'; null for a foreign "
                     "dense graph, whose files do not record it)",
    "model.quantization": "map|null: an INT8 export's scheme, what stayed fp32 and its calibration data",
    "reference": "object|null: the reference checkpoint (null without --reference)",
    "reference.path": "str: the checkpoint folder",
    "reference.pruning": "str: 'dense', 'absolute_threshold' or 'topk'",
    "reference.spec": "map|null: the checkpoint's own pruning spec, used by the masked rule",
    "data": "object: the evaluation set",
    "data.source": "str: data file or GLUE file",
    "data.task": "str|null: GLUE task name",
    "data.regression": "bool: labels are scores (predictions are the first logit)",
    "data.examples": "int: examples evaluated (all of the set, or the first --max-examples)",
    "data.max_length": "int: truncation length in tokens",
    "data.mean_tokens": "float: real (unpadded) tokens per example after truncation",
    "data.truncated": "int: examples longer than max_length (cut)",
    "results": "object: metrics of each model on the same token ids",
    "results.graph": "object: the exported graph",
    "results.reference": "object|null: the masked rule on the reference checkpoint (null without --reference)",
    "results.dense": "object|null: the reference checkpoint with pruning off (null without --reference)",
    "results.*.metrics": "map: every metric of the task (fractions: accuracy 0.9 = 90%)",
    "results.*.value": "float|null: the gated metric (settings.metric)",
    "results.*.flops_reduction": "float: dense FLOPs / this model's FLOPs (ltp_deploy.flops; 1.0 for dense)",
    "results.*.mean_kept_per_layer": "list[float]: tokens alive after each layer's decision, averaged",
    "agreement": "object|null: graph against the masked reference (null without --reference)",
    "agreement.predictions": "float|null: fraction of examples with the same predicted class (null: regression)",
    "agreement.max_abs_logit_diff": "float|null: largest |logit difference| over sequences with identical "
                                    "decisions (numerical parity; null when there is none)",
    "agreement.reference_cls_pruned": "int: sequences in which the masked rule pruned CLS (not compared)",
    "agreement.reference_cls_pruned_rate": "float: reference_cls_pruned / examples",
    "agreement.compared": "int: sequences whose decisions were compared (the reference kept CLS)",
    "agreement.kept_counts_equal_per_layer": "list[float]: per layer, fraction of compared sequences whose "
                                             "kept counts are equal (null entries when none was compared)",
    "agreement.mismatched": "int: compared sequences whose kept counts differ in at least one layer",
    "agreement.decision_mismatch_rate": "float|null: mismatched / compared (null when compared is 0)",
    "drop": "object|null: metric drops of the graph, in metric units (null without --reference or labels)",
    "drop.vs_reference": "float|null: reference value - graph value (the max-drop gate; > 0: graph worse)",
    "drop.vs_dense": "float|null: dense value - graph value (not gated: the cost of pruning itself)",
    "gates": "list[object]: the gates evaluated, in the order min-metric, max-drop, max-decision-mismatch",
    "gates[].name": "str: 'min-metric', 'max-drop' or 'max-decision-mismatch'",
    "gates[].value": "float|null: the measured value (null when it could not be measured: the gate fails)",
    "gates[].bound": "float: the bound given",
    "gates[].op": "str: '>=' or '<=': the gate passes when value op bound",
    "gates[].passed": "bool: the gate passed",
    "gates[].message": "str: one line, 'PASS name: ...' or 'FAIL name: measured value vs bound'",
    "versions": "map: library name -> installed version",
}

GITHUB_ACTIONS_EXAMPLE = """\
# .github/workflows/accuracy-gate.yml: export the checkpoint, then gate the graph on SST-2 dev.
name: accuracy-gate
on: [pull_request]
jobs:
  check:
    runs-on: ubuntu-latest
    env:
      GLUE_DIR: ${{ github.workspace }}/glue   # <GLUE_DIR>/SST-2/dev.tsv
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install .
      - run: ltp-deploy export runs/sst2-ltp --target onnx -o out/sst2-onnx
      - name: Gate accuracy and pruning decisions
        run: >
          ltp-deploy check out/sst2-onnx --task sst2 --reference runs/sst2-ltp
          --max-drop 0.01 --max-decision-mismatch 0.01
          --json out/check.json --junit out/check.xml
      - uses: actions/upload-artifact@v4
        if: always()   # keep the report of a failed gate too
        with: {name: accuracy-gate, path: "out/check.*"}
"""


def failure_lines(report: dict) -> list[str]:
    """One line per failed gate, e.g. ``FAIL max-drop: accuracy drop 0.0312 > 0.0100 (...)``."""
    return [g["message"] for g in report["gates"] if not g["passed"]]


def agreement_text(report: dict) -> str:
    """Graph against the masked rule in one line: predictions, kept counts per layer, mismatches, CLS pruned."""
    a, examples = report["agreement"], report["data"]["examples"]
    per_layer = " ".join(fmt(v, 3) for v in a["kept_counts_equal_per_layer"])
    predictions = "" if a["predictions"] is None else f"predictions {fmt(a['predictions'])}, "
    return (f"{predictions}kept counts equal per layer [{per_layer}], decision mismatch "
            f"{fmt(a['decision_mismatch_rate'])} ({a['mismatched']}/{a['compared']}); reference pruned CLS in "
            f"{a['reference_cls_pruned']}/{examples}")


def summary_lines(report: dict) -> list[str]:
    """A concise plain-text summary (CI logs, piped output): models, metrics, agreement, gates."""
    d, m = report["data"], report["model"]
    metric = report["settings"]["metric"]
    lines = [(f"check {m['path']} ({m['runtime']}, {m['precision']}) on {d['source']}: {d['examples']} examples, "
              f"max_length {d['max_length']}, {d['mean_tokens']:.1f} tokens/example")]
    for role in ("graph", "reference", "dense"):
        r = report["results"][role]
        if r is None:
            continue
        metrics = ", ".join(f"{k} {fmt(v)}" for k, v in r["metrics"].items())
        lines.append(f"{role:9s} {metrics}; FLOPs x{r['flops_reduction']:.2f} fewer than dense")
    if report["agreement"] is not None:
        lines.append(f"agreement {agreement_text(report)}")
        lines.append(f"drop      {metric} {fmt(report['drop']['vs_reference'])} vs reference, "
                     f"{fmt(report['drop']['vs_dense'])} vs dense")
    lines += [g["message"] for g in report["gates"] if g["passed"]]
    if not report["gates"]:
        lines.append("no gate set: pass --min-metric, or --reference CKPT (with --max-drop) to gate")
    return lines


# ------------------------------------------------------------------------------------------------ JUnit

def junit_xml(report: dict) -> str:
    """JUnit XML: one testsuite ``ltp-deploy check`` with one testcase per gate; a failed gate holds a
    ``<failure>`` whose message is its one-line FAIL message. The figures travel as suite properties."""
    gates = report["gates"]
    root = ET.Element("testsuites", name=SUITE_NAME, tests=str(len(gates)),
                      failures=str(sum(not g["passed"] for g in gates)), time=f"{report['elapsed_s']:.3f}")
    suite = ET.SubElement(root, "testsuite", name=SUITE_NAME, tests=str(len(gates)),
                          failures=str(sum(not g["passed"] for g in gates)), errors="0", skipped="0",
                          time=f"{report['elapsed_s']:.3f}", timestamp=report["created"])
    props = ET.SubElement(suite, "properties")
    for name, value in _properties(report):
        ET.SubElement(props, "property", name=name, value=value)
    for g in gates:
        case = ET.SubElement(suite, "testcase", classname=SUITE_NAME, name=g["name"], time="0")
        if not g["passed"]:
            failure = ET.SubElement(case, "failure", message=g["message"], type="gate")
            failure.text = g["message"]
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _properties(report: dict) -> list[tuple[str, str]]:
    props = [("model", report["model"]["path"]), ("runtime", report["model"]["runtime"]),
             ("data", report["data"]["source"]), ("examples", str(report["data"]["examples"])),
             ("metric", report["settings"]["metric"])]
    for role, r in report["results"].items():
        if r is not None:
            props += [(f"{role}.{k}", fmt(v)) for k, v in r["metrics"].items()]
    a = report["agreement"]
    if a is not None:
        props += [("agreement.predictions", fmt(a["predictions"])),
                  ("agreement.decision_mismatch_rate", fmt(a["decision_mismatch_rate"]))]
    return props


def write_junit(path: str | Path, report: dict, **rules) -> Path:
    """Write ``junit_xml(report)`` atomically (temp file + rename; ``rules`` as ``outputs.check_output``)."""
    from ltp_deploy.outputs import write_text

    return write_text(path, junit_xml(report), "junit", **rules)


# ------------------------------------------------------------------------------------------------ helpers

def json_float(x: Any, digits: int = 6) -> float | None:
    """A JSON-safe rounded float; None for None, NaN and infinities."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else json_float(a - b)


def fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{round(x, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.0000"
