"""The claims table: one row per task, graph, runtime, precision and batch size, read from the run's check and
bench reports, beside the published claims (quoted, not measured). ``CLAIMS_SCHEMA`` documents ``claims.json``.
"""

from __future__ import annotations

import datetime as dt

from ltp_deploy.claims.plan import ClaimsSettings, graph_name, int8_peer
from ltp_deploy.claims.steps import Step, read_report
from ltp_deploy.outputs import MARKDOWN_MARK
from ltp_deploy.runtimes import BACKENDS

SCHEMA_VERSION = 1
KIND = "ltp-deploy-claims"

CLAIMS_SCHEMA: dict[str, str] = {
    "schema_version": "int: version of this layout (1); fields are only added within a version",
    "kind": "str: always 'ltp-deploy-claims'",
    "created": "str: ISO 8601 UTC time the table was written",
    "command": "str: the reproduce command line",
    "elapsed_s": "float: seconds spent in the steps this invocation ran (skipped steps cost nothing)",
    "environment": "map|null: the first timed row's environment (CPU, cores, threads, library versions)",
    "settings": "object: runtimes, precisions, batch_sizes, threads, warmup, max_examples, min_metric, optimum_cli",
    "steps": "list[object]: every step: name, command, output, status (done, skipped, gate-failed, failed, "
             "blocked), seconds, message",
    "rows": "list[object]: the measured rows",
    "rows[].task": "str: the task",
    "rows[].graph": "str: 'pruned', 'dense' (the ltp-deploy --dense export of the dense checkpoint) or 'optimum' "
                    "(INT8 only: the Optimum INT8 peer of the runtime, claims.peers)",
    "rows[].runtime": "str: 'onnxruntime' or 'openvino' (CPU)",
    "rows[].precision": "str: 'fp32' or 'int8' (the graph's weights)",
    "rows[].batch_size": "int: sequences per batch",
    "rows[].metric": "str: the task's primary metric (accuracy, pearson, ...)",
    "rows[].metric_dense": "float|null: the dense checkpoint's metric (its fp32 export, check)",
    "rows[].metric_graph": "float|null: this graph's metric (check)",
    "rows[].metric_drop": "float|null: metric_dense - metric_graph",
    "rows[].check_passed": "bool|null: this graph's check gates (null: no check report)",
    "rows[].flops_reduction": "float|null: dense FLOPs / this graph's FLOPs on the benched inputs",
    "rows[].p50_ms": "float|null: median batch latency, ms",
    "rows[].sequences_per_s": "float|null: sequences per second",
    "rows[].speedup_vs_dense": "float|null: over the ltp-deploy dense of the same runtime and precision (1.0 for "
                               "the dense rows)",
    "rows[].spread_vs_dense": "list[float]|null: p10 and p90 of the per-pair ratios behind speedup_vs_dense",
    "rows[].speedup_vs_optimum": "float|null: over the Optimum fp32 dense export on the same runtime (null: no "
                                 "optimum-cli)",
    "rows[].spread_vs_optimum": "list[float]|null: p10 and p90 of the per-pair ratios behind speedup_vs_optimum",
    "rows[].speedup_vs_optimum_int8": "float|null: INT8 rows: over the Optimum INT8 peer of the same runtime "
                                      "(optimum-cli onnxruntime quantize --avx2; NNCF for OpenVINO); 1.0 for the "
                                      "peer's own rows",
    "rows[].spread_vs_optimum_int8": "list[float]|null: p10 and p90 of the ratios behind speedup_vs_optimum_int8",
    "rows[].efficiency": "float|null: speedup_vs_dense / flops_reduction",
    "rows[].previous": "object|null: the same row in the claims.json this run replaced (null: none): "
                       "speedup_vs_dense, speedup_vs_optimum, speedup_vs_optimum_int8, and within_spread (bool|null: each previous speedup "
                       "lies within this run's p10-p90 of the per-pair ratios; null: nothing to compare)",
    "rows[].status": "str: 'ok', or what is missing (the failed or blocked step)",
    "rows[].environment": "map|null: CPU, cores, threads and library versions of the bench",
    "rows[].commands": "list[str]: the export, check and bench commands behind the row",
    "quoted": "list[object]: published claims, quoted not measured: source, model, task, flops_reduction, "
              "metric, speedup, setting",
}

# Published claims (the papers named in "source"), quoted beside the measured rows, never measured here.
QUOTED = [
    {"source": "LTP (Kim et al., KDD'22)", "model": "RoBERTa-base", "task": "GLUE", "flops_reduction": 2.1,
     "metric": "< 1 point below dense", "speedup": 1.9, "setting": "throughput, Intel Haswell CPU, length 128"},
    {"source": "ToP (Li et al., KDD'23)", "model": "BERT-base", "task": "sst2", "flops_reduction": 4.66,
     "metric": "accuracy 93.4", "speedup": None, "setting": "FLOPs only"},
    {"source": "ToP (Li et al., KDD'23)", "model": "BERT-base", "task": "mrpc", "flops_reduction": 7.71,
     "metric": "F1 89.1", "speedup": None, "setting": "FLOPs only"},
    {"source": "ToP (Li et al., KDD'23)", "model": "BERT-base", "task": "stsb", "flops_reduction": 7.20,
     "metric": "Pearson 86.6", "speedup": None, "setting": "FLOPs only"},
    {"source": "ToP (Li et al., KDD'23)", "model": "BERT-base", "task": "GLUE", "flops_reduction": None,
     "metric": None, "speedup": 7.4, "setting": "'up to 7.4x latency on an Intel CPU' (setup not published)"},
]


def claims_report(s: ClaimsSettings, steps: list[Step], command: str, previous: dict | None = None) -> dict:
    """The claims report (``CLAIMS_SCHEMA``) from the reports the steps left under ``s.out``; ``previous``: the
    claims report this one replaces, whose ratios each row is compared with."""
    rows = [row for task in s.checkpoints for row in _task_rows(s, task, {st.name: st for st in steps})]
    _compare_with(rows, previous)
    return {
        "schema_version": SCHEMA_VERSION, "kind": KIND,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": command,
        "elapsed_s": round(sum(st.seconds for st in steps), 1),
        "environment": next((r["environment"] for r in rows if r["environment"]), None),
        "settings": {"runtimes": list(s.runtimes), "precisions": list(s.precisions),
                     "batch_sizes": list(s.batch_sizes), "threads": s.threads, "warmup": s.warmup,
                     "max_examples": s.max_examples, "min_metric": s.min_metric, "optimum_cli": s.optimum_cli},
        "steps": [st.record() for st in steps], "rows": rows, "quoted": QUOTED,
    }


def _task_rows(s: ClaimsSettings, task: str, steps: dict[str, Step]) -> list[dict]:
    d = s.task_dir(task)

    def report(kind: str, name: str) -> dict | None:
        """The report of step TASK/KIND/NAME, unless that step failed or was blocked in this run: a report left
        by an earlier run is then stale (the graph it measured is not the one this run asked for)."""
        step = steps.get(f"{task}/{kind}/{name}")
        if step is not None and step.status in ("failed", "blocked"):
            return None
        return read_report(d / f"{kind}-{name}.json")

    fp32 = "fp32" in s.precisions
    dense_check = report("check", graph_name("dense", s.runtimes[0], "fp32")) if fp32 else None
    metric_dense = dense_check["results"]["graph"]["value"] if dense_check else None
    rows = []
    for runtime in s.runtimes:
        for precision in s.precisions:
            dense = graph_name("dense", runtime, precision)
            pruned_vs_dense = report("bench", f"{graph_name('pruned', runtime, precision)}-vs-{dense}")
            peer = int8_peer(runtime) if precision == "int8" and s.optimum_cli else None
            for kind in ("pruned", "dense") + (("optimum",) if peer else ()):
                name = peer if kind == "optimum" else graph_name(kind, runtime, precision)
                vs = {"dense": pruned_vs_dense if kind == "pruned" else None,
                      "optimum": report("bench", f"{name}-vs-optimum"),
                      "optimum_int8": report("bench", f"{name}-vs-{peer}") if peer and kind != "optimum" else None}
                # where this graph was timed: as MODEL of its own bench, or (dense) as OTHER of the pruned one's
                own = vs["dense"] or vs["optimum"] or vs["optimum_int8"]
                timed = (own, "model") if own else (pruned_vs_dense, "other")
                related = [st for n, st in steps.items()
                           if n in (f"{task}/export/{name}", f"{task}/check/{name}", f"{task}/{name}")
                           or n.startswith(f"{task}/bench/{name}-vs-")]
                check = report("check", name)
                for b in s.batch_sizes:
                    rows.append(_row(task, kind, runtime, precision, b, metric_dense, check, timed, vs, related))
    return rows


def _row(task, kind, runtime, precision, batch, metric_dense, check, timed, vs, steps) -> dict:
    """One row; ``vs`` holds the bench reports of this graph against each peer ("dense", "optimum",
    "optimum_int8"; None where not timed)."""
    graph_value = check["results"]["graph"]["value"] if check else None
    report, role = timed
    own = _result(report, batch)
    c = {peer: _comparison(r, batch) for peer, r in vs.items()}
    model = own[role] if own else None
    flops = model["flops_reduction"] if model else None
    speed = 1.0 if kind == "dense" and model else (c["dense"] or {}).get("speedup")
    peer_speed = 1.0 if kind == "optimum" and model else (c["optimum_int8"] or {}).get("speedup")
    bad = [st for st in steps if st.status in ("failed", "blocked")]
    return {
        "task": task, "graph": kind, "runtime": runtime, "precision": precision, "batch_size": batch,
        "metric": check["settings"]["metric"] if check else None, "metric_dense": metric_dense,
        "metric_graph": graph_value,
        "metric_drop": None if metric_dense is None or graph_value is None else metric_dense - graph_value,
        "check_passed": check["passed"] if check else None, "flops_reduction": flops,
        "p50_ms": model["latency_ms"]["p50"] if model else None,
        "sequences_per_s": model["sequences_per_s"] if model else None,
        "speedup_vs_dense": speed, "spread_vs_dense": _spread(c["dense"]),
        "speedup_vs_optimum": (c["optimum"] or {}).get("speedup"), "spread_vs_optimum": _spread(c["optimum"]),
        "speedup_vs_optimum_int8": peer_speed, "spread_vs_optimum_int8": _spread(c["optimum_int8"]),
        "efficiency": None if speed is None or not flops else speed / flops,
        "previous": None,
        "status": "ok" if not bad else "; ".join(f"{st.name} {st.status}" for st in bad),
        "environment": (report or {}).get("environment"),
        "commands": [st.command for st in steps],
    }


def _compare_with(rows: list[dict], previous: dict | None) -> None:
    """Fill each row's ``previous`` from the same row (task, graph, runtime, precision, batch) of ``previous``."""
    key = lambda r: (r["task"], r["graph"], r["runtime"], r["precision"], r["batch_size"])  # noqa: E731
    before = {key(r): r for r in (previous or {}).get("rows", [])}
    for row in rows:
        old = before.get(key(row))
        if old is None:
            continue
        checks = [lo <= old[f"speedup_{peer}"] <= hi for peer in ("vs_dense", "vs_optimum", "vs_optimum_int8")
                  if old.get(f"speedup_{peer}") is not None and row[f"spread_{peer}"]
                  for lo, hi in [row[f"spread_{peer}"]]]
        row["previous"] = {"speedup_vs_dense": old.get("speedup_vs_dense"),
                           "speedup_vs_optimum": old.get("speedup_vs_optimum"),
                           "speedup_vs_optimum_int8": old.get("speedup_vs_optimum_int8"),
                           "within_spread": all(checks) if checks else None}


def _result(report: dict | None, batch: int) -> dict | None:
    return next((r for r in (report or {}).get("results", []) if r["batch_size"] == batch), None)


def _comparison(report: dict | None, batch: int) -> dict | None:
    result = _result(report, batch)
    return result.get("comparison") if result else None


def _spread(comparison: dict | None) -> list[float] | None:
    return [comparison["ratio_p10"], comparison["ratio_p90"]] if comparison else None


def markdown(report: dict) -> str:
    """``claims.md``: the measured table, then the quoted claims."""
    head = ("| task | graph | runtime | precision | batch | metric (dense / graph / drop) | check | FLOPs red. | "
            "p50 ms | seq/s | vs ltp-deploy dense | vs Optimum dense | vs Optimum INT8 | efficiency |")
    env = report["environment"] or {}
    versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items()
                         if k in BACKENDS)
    lines = [MARKDOWN_MARK, "", f"`{report['command']}` ({report['created']}; steps run now took "
             f"{report['elapsed_s'] / 60:.1f} min)", "",
             f"Machine: {env.get('cpu', '?')}, {env.get('usable_cores', '?')} usable cores, {env.get('threads', '?')} "
             f"threads; {versions}.", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in report["rows"]:
        metric = f"{_pct(r['metric_dense'])} / {_pct(r['metric_graph'])} / {_pct(r['metric_drop'])}"
        check = {True: "pass", False: "**FAILED**", None: "-"}[r["check_passed"]]
        cells = [r["task"], r["graph"], r["runtime"], r["precision"], str(r["batch_size"]),
                 f"{r['metric'] or ''} {metric}", check, _x(r["flops_reduction"]), _num(r["p50_ms"], 2),
                 _num(r["sequences_per_s"], 1), _x(r["speedup_vs_dense"], r["spread_vs_dense"]),
                 _x(r["speedup_vs_optimum"], r["spread_vs_optimum"]),
                 _x(r.get("speedup_vs_optimum_int8"), r.get("spread_vs_optimum_int8")), _num(r["efficiency"], 2)]
        if r["status"] != "ok":
            cells[-1] += f" ({r['status']})"
        lines.append("| " + " | ".join(cells) + " |")
    compared = [r["previous"]["within_spread"] for r in report["rows"]
                if r["previous"] and r["previous"]["within_spread"] is not None]
    if compared:
        lines += ["", f"Against the previous run: {sum(compared)} of {len(compared)} rows' previous speedups lie "
                      "within this run's p10-p90 of the per-pair ratios."]
    lines += ["", "Published claims (quoted, not measured):", "",
              "| source | model | task | FLOPs reduction | metric | speedup | setting |",
              "|---|---|---|---|---|---|---|"]
    for q in report["quoted"]:
        lines.append(f"| {q['source']} | {q['model']} | {q['task']} | {_x(q['flops_reduction'])} | "
                     f"{q['metric'] or '-'} | {_x(q['speedup'])} | {q['setting']} |")
    failed = [st for st in report["steps"] if st["status"] in ("failed", "blocked", "gate-failed")]
    if failed:
        lines += ["", "Steps that did not pass:", ""] + [f"* `{st['name']}` {st['status']}: {st['message']}"
                                                        for st in failed]
    return "\n".join(lines) + "\n"




def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _x(value: float | None, spread: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"x{value:.2f}" + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else "")
