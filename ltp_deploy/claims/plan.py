"""What a claims run does for each task, as steps (``claims.steps``), laid out under ``OUT/<task>/``:

* ``ckpt`` (with ``--train``): ``ltp-deploy train`` with its documented defaults (``ckpt-dense`` beside it);
* ``optimum``: the dense checkpoint exported by Optimum (when an ``optimum-cli`` is found), and with INT8 its
  INT8 peers (``claims.peers``): ``optimum-int8-onnxruntime`` (``optimum-cli onnxruntime quantize --avx2``) and
  ``optimum-int8-openvino`` (NNCF, as optimum-intel quantizes);
* ``{pruned,dense}-{onnx,openvino}[-int8]``: ltp-deploy exports; pruned from the checkpoint, dense (``--dense``)
  from the dense checkpoint, so the dense rows carry the dense model's own metric;
* ``check-<graph>.json``: ``check`` of each graph (pruned ones against the checkpoint's masked rule);
* ``bench-<graph>-vs-<other>.json``: ``bench --compare``, interleaved, pruned against the ltp-deploy dense of
  the same precision, every graph against the Optimum dense, and every INT8 graph (the Optimum INT8 peer too)
  against the Optimum INT8 peer of its runtime (``check-optimum-int8-<runtime>.json``: the peer's metric).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ltp_deploy.bench import KIND as BENCH_KIND
from ltp_deploy.check import KIND as CHECK_KIND
from ltp_deploy.claims.steps import Step, ltp_deploy
from ltp_deploy.exporters import TARGET_FOR_RUNTIME

TARGETS = TARGET_FOR_RUNTIME  # runtime -> the export target it runs
PRECISIONS = ("fp32", "int8")  # the weight precisions a claims run compares (``exporters.WEIGHT_PRECISIONS``)
# Long inputs: a slice of the held-out reviews keeps a task's run within minutes (an explicit value wins).
TASK_MAX_EXAMPLES = {"imdb": 500}


@dataclass(frozen=True)
class ClaimsSettings:
    """One claims run; ``checkpoints`` maps a task to its pruned checkpoint (``None`` with ``train``)."""

    out: Path
    checkpoints: dict[str, Path | None]
    dense: dict[str, Path] = field(default_factory=dict)  # task -> dense checkpoint (default: CKPT-dense)
    train_model: Path | None = None  # with --train: the pretrained model train starts from
    train_args: tuple[str, ...] = ()  # extra options for train
    runtimes: tuple[str, ...] = tuple(TARGET_FOR_RUNTIME)
    precisions: tuple[str, ...] = PRECISIONS
    batch_sizes: tuple[int, ...] = (1, 32)
    threads: int = 2
    warmup: int = 10
    max_examples: int | None = None
    min_metric: float | None = None
    optimum_cli: str | None = None
    rebench: bool = False  # time every pair again, even when its bench report is complete

    def task_dir(self, task: str) -> Path:
        return self.out / task

    def checkpoint(self, task: str) -> Path:
        given = self.checkpoints.get(task)
        return given if given is not None else self.task_dir(task) / "ckpt"

    def dense_checkpoint(self, task: str) -> Path:
        if task in self.dense:
            return self.dense[task]
        ckpt = self.checkpoint(task)
        return ckpt.with_name(ckpt.name + "-dense")

    def examples(self, task: str) -> int | None:
        return self.max_examples if self.max_examples is not None else TASK_MAX_EXAMPLES.get(task)


def graph_name(kind: str, runtime: str, precision: str) -> str:
    """``pruned-onnx``, ``dense-openvino-int8``, ...: the folder of an export under the task's folder."""
    return f"{kind}-{TARGETS[runtime]}" + ("-int8" if precision == "int8" else "")


def plan(s: ClaimsSettings) -> list[Step]:
    """Every step of the run, in an order where each step's needs come first."""
    steps: list[Step] = []
    for task in s.checkpoints:
        steps += _task_steps(s, task)
    return steps


def _task_steps(s: ClaimsSettings, task: str) -> list[Step]:
    d, ckpt, dense_ckpt = s.task_dir(task), s.checkpoint(task), s.dense_checkpoint(task)
    slice_args = ("--max-examples", str(s.examples(task))) if s.examples(task) else ()
    steps, trained = [], []
    if s.checkpoints[task] is None:
        steps.append(Step(f"{task}/train", ltp_deploy("train", "--model", s.train_model, "--task", task, "-o", ckpt,
                                                        *s.train_args),
                          ckpt, marker="ltp_deploy.json"))
        trained = [steps[-1].name]
    if s.optimum_cli:
        steps.append(Step(f"{task}/optimum", [s.optimum_cli, "export", "onnx", "--model", str(dense_ckpt), "--task",
                                              "text-classification", str(d / "optimum")],
                          d / "optimum" / "model.onnx", needs=trained, env={"HF_HUB_OFFLINE": "1"},
                          sources=[dense_ckpt]))
    if s.optimum_cli and "int8" in s.precisions:
        steps += [step for runtime in s.runtimes for step in _int8_peer_steps(s, task, runtime, slice_args)]
    for runtime in s.runtimes:
        for precision in s.precisions:
            for kind in ("dense", "pruned"):  # the dense graph first: the pruned one is timed against it
                steps += _graph_steps(s, task, runtime, precision, kind, ckpt, dense_ckpt, slice_args, trained)
    return steps


def int8_peer(runtime: str) -> str:
    """The folder of the Optimum INT8 peer of ``runtime`` under the task's folder."""
    return f"optimum-int8-{runtime}"


def int8_peer_graph(s: ClaimsSettings, task: str, runtime: str) -> Path:
    """The graph file of the Optimum INT8 peer of ``runtime`` (what its step writes)."""
    from ltp_deploy.claims.peers import ORT_PEER_GRAPH, OV_PEER_GRAPH

    return s.task_dir(task) / int8_peer(runtime) / (ORT_PEER_GRAPH if runtime == "onnxruntime" else OV_PEER_GRAPH)


def _int8_peer_steps(s: ClaimsSettings, task: str, runtime: str, slice_args: tuple) -> list[Step]:
    """Make the Optimum INT8 peer of ``runtime``, check its metric and time it against Optimum's fp32 graph."""
    import sys

    from ltp_deploy.claims.peers import ort_peer_argv

    d, name, graph = s.task_dir(task), int8_peer(runtime), int8_peer_graph(s, task, runtime)
    argv = (ort_peer_argv(s.optimum_cli, d / "optimum", d / name) if runtime == "onnxruntime" else
            [sys.executable, "-m", "ltp_deploy.claims.peers", str(d / "optimum"), str(d / name), "--task", task])
    make = Step(f"{task}/{name}", argv, graph, needs=[f"{task}/optimum"], env={"HF_HUB_OFFLINE": "1"})
    check = Step(f"{task}/check/{name}", ltp_deploy("check", graph, "--backend", runtime, "--task", task,
                                                    *slice_args, "--json", d / f"check-{name}.json", "--overwrite"),
                 d / f"check-{name}.json", needs=[make.name], report_kind=CHECK_KIND)
    return [make, check, _bench_step(s, task, runtime, name, graph, "optimum", d / "optimum", [make.name],
                                     slice_args)]


def _bench_step(s: ClaimsSettings, task: str, runtime: str, name: str, model: Path, other: str, other_path: Path,
                needs: list[str], slice_args: tuple) -> Step:
    """``bench MODEL --compare OTHER``, interleaved, into ``bench-<name>-vs-<other>.json``."""
    out = s.task_dir(task) / f"bench-{name}-vs-{other}.json"
    bench = ["bench", model, "--compare", other_path, "--backend", runtime, "--task", task, "--batch-size",
             ",".join(map(str, s.batch_sizes)), "--threads", str(s.threads), "--warmup", str(s.warmup),
             *slice_args, "--json", out, "--overwrite"]
    return Step(f"{task}/bench/{name}-vs-{other}", ltp_deploy(*bench), out, needs=needs, report_kind=BENCH_KIND,
                force=s.rebench)


def _graph_steps(s: ClaimsSettings, task: str, runtime: str, precision: str, kind: str, ckpt: Path,
                 dense_ckpt: Path, slice_args: tuple, trained: list[str]) -> list[Step]:
    """Export, check and bench steps of one graph."""
    d, name = s.task_dir(task), graph_name(kind, runtime, precision)
    source = ckpt if kind == "pruned" else dense_ckpt
    args = ["export", source, "--target", TARGETS[runtime], "--task", task, "-o", d / name]
    if kind == "dense":
        args.append("--dense")
    if precision == "int8":
        args += ["--precision", "int8", *slice_args]  # one gate, pruned and dense: the metric drop
    export = Step(f"{task}/export/{name}", ltp_deploy(*args), d / name, needs=trained,
                  marker="ltp_deploy_export.json", sources=[source])
    check_args = ["check", d / name, "--task", task, *slice_args, "--json", d / f"check-{name}.json", "--overwrite"]
    if kind == "pruned":
        check_args += ["--reference", ckpt]
    if s.min_metric is not None:
        check_args += ["--min-metric", str(s.min_metric)]
    steps = [export, Step(f"{task}/check/{name}", ltp_deploy(*check_args), d / f"check-{name}.json",
                          needs=[export.name], report_kind=CHECK_KIND, sources=[ckpt] if kind == "pruned" else [])]
    others = {}  # what this graph is timed against: name -> (its path, the step that makes it)
    if kind == "pruned":
        dense = graph_name("dense", runtime, precision)
        others[dense] = (d / dense, f"{task}/export/{dense}")
    if s.optimum_cli:
        others["optimum"] = (d / "optimum", f"{task}/optimum")
        if precision == "int8":
            peer = int8_peer(runtime)
            others[peer] = (int8_peer_graph(s, task, runtime), f"{task}/{peer}")
    for other, (other_path, other_step) in others.items():
        steps.append(_bench_step(s, task, runtime, name, d / name, other, other_path, [export.name, other_step],
                                 slice_args))
    return steps
