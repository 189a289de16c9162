"""What thread safety costs and buys one runtime adapter: single-thread and shared-runtime throughput, as JSON.

Loads one export on one runtime and times, interleaved in one process (A B C D, A B C D, ... so that drift in the
machine's load hits every variant alike), on real SST-2 dev sentences:

* ``single``: one thread calling ``run`` (the adapter as it is: for OpenVINO, a request checked out of its pool).
* ``single_legacy``: one thread through the adapter's old path, a copy kept here: for OpenVINO one shared
  ``InferRequest``, no pool; for torch ``set_num_threads`` / forward / restore without the lock (ONNX Runtime's
  CPU path did not change).
* ``shared``: ``--callers`` threads sharing the one runtime, each calling ``run`` on its share of the batches.
* ``shared_lock``: the same threads, every ``run`` behind one lock (the floor ``shared`` must reach).

Before timing, ``--check-rounds`` passes of ``--callers`` threads over all the batches count the answers that
differ from the single-thread answer of the same batch (logits beyond 1e-5 or other kept counts) and the calls
that raised: ``wrong_answers`` and ``errors`` must both be 0.

Throughput is sentences per second, the median over ``--rounds``; ``single_vs_legacy`` is the per-round ratio
(median, min, max). The load average is printed before and after: do not trust a run on a busy machine.

Example::

    python scripts/thread_bench.py /tmp/minilm-ov --backend openvino --threads 2 --callers 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def main() -> None:
    args = _parse()
    from transformers import AutoTokenizer

    from ltp_deploy.data import encode, load_glue
    from ltp_deploy.runtimes import open_runtime

    load_before = os.getloadavg()
    if args.backend == "torch" and not args.threads:
        raise SystemExit("--threads must be set for torch: the lock guards only runs with a thread count")
    folder = Path(args.export) if Path(args.export).is_dir() else Path(args.export).parent
    examples = load_glue("SST-2", "dev", args.glue_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    batches = [encode(tokenizer, examples, 128, indices=range(i * args.batch_size, (i + 1) * args.batch_size))
               for i in range(args.batches)]
    options = {"hint": args.hint} if args.backend == "openvino" else {}
    runtime = open_runtime(args.export, backend=args.backend, threads=args.threads, **options)
    runtime = getattr(runtime, "batched", runtime)  # batches of --batch-size > 1 run the batched graph
    variants = {"single": lambda: _serial(runtime.run, batches),
                "shared": lambda: _shared(runtime.run, batches, args.callers),
                "shared_lock": lambda: _shared(_locked(runtime.run), batches, args.callers)}
    legacy = {"openvino": LegacyOpenVINO, "torch": LegacyTorch}.get(args.backend)
    if legacy is not None:
        legacy = legacy(runtime)
        _same_answers(runtime, legacy, batches)
        variants["single_legacy"] = lambda: _serial(legacy.run, batches)
    report_check = _check_shared(runtime, batches, args.callers, args.check_rounds)
    rows = args.batch_size * args.batches
    for run in variants.values():  # warm-up: first-call compilation and allocation
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    report = {"runtime": runtime.name, "export": str(args.export), "hint": args.hint if options else None,
              "threads": args.threads, "callers": args.callers, "batch_size": args.batch_size,
              "batches": args.batches, "rounds": args.rounds, "cpus": os.cpu_count(),
              **report_check,
              "sentences_per_s": {name: round(rows / statistics.median(t), 1) for name, t in times.items()}}
    if "single_legacy" in times:
        ratios = [legacy_t / new_t for new_t, legacy_t in zip(times["single"], times["single_legacy"])]
        report["single_vs_legacy"] = {"median": round(statistics.median(ratios), 3),
                                      "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    report["shared_vs_lock"] = round(statistics.median(times["shared_lock"]) / statistics.median(times["shared"]), 3)
    report["loadavg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(report, indent=1))


class LegacyOpenVINO:
    """The old ``OpenVINOCPU._infer``: one ``InferRequest`` for every call (not thread-safe), behind the same
    ``feed`` check; on its own request of the same compiled model."""

    def __init__(self, runtime):
        self.runtime, self.request = runtime, runtime.compiled.create_infer_request()

    def run(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.request.infer(self.runtime.feed(batch))
        logits = np.array(self.request.get_tensor("logits").data, dtype=np.float32)
        return logits, np.array(self.request.get_tensor("kept_counts").data, dtype=np.int64)


class LegacyTorch:
    """The old ``TorchRuntime._infer``: set the thread count, run, restore it, with no lock."""

    def __init__(self, runtime):
        self.runtime = runtime

    def run(self, batch) -> tuple[np.ndarray, np.ndarray]:
        import torch

        tensors = [torch.from_numpy(a) for a in self.runtime.feed(batch).values()]
        previous = torch.get_num_threads()
        torch.set_num_threads(self.runtime.threads)
        try:
            return self.runtime._forward(tensors)
        finally:
            torch.set_num_threads(previous)


def _serial(run, batches) -> None:
    for batch in batches:
        run(batch)


def _shared(run, batches, callers: int) -> None:
    with ThreadPoolExecutor(callers) as pool:
        for _ in pool.map(run, batches):
            pass


def _check_shared(runtime, batches, callers: int, rounds: int) -> dict:
    """``callers`` threads share ``runtime`` over ``rounds`` passes of ``batches``: answers that differ from the
    sequential ones, and calls that raised."""
    expected = [runtime.run(b) for b in batches]
    wrong, errors, calls = 0, 0, 0

    def call(i):
        try:
            logits, kept = runtime.run(batches[i])
        except Exception:  # noqa: BLE001 - counted, not raised: the figure is how many calls fail
            return "error"
        ok = np.allclose(logits, expected[i][0], atol=1e-5, rtol=0) and np.array_equal(kept, expected[i][1])
        return "ok" if ok else "wrong"

    with ThreadPoolExecutor(callers) as pool:
        for _ in range(rounds):
            for outcome in pool.map(call, range(len(batches))):
                calls += 1
                wrong += outcome == "wrong"
                errors += outcome == "error"
    return {"checked_calls": calls, "wrong_answers": wrong, "errors": errors}


def _locked(run):
    lock = threading.Lock()

    def call(batch):
        with lock:
            return run(batch)
    return call


def _same_answers(runtime, legacy, batches) -> None:
    for batch in batches[:4]:
        (a, ka), (b, kb) = runtime.run(batch), legacy.run(batch)
        if not (np.array_equal(a, b) and np.array_equal(ka, kb)):
            raise SystemExit("the legacy path and the adapter disagree: the comparison would be meaningless")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="an export folder or graph file")
    parser.add_argument("--backend", choices=("openvino", "onnxruntime", "torch"), default="openvino")
    parser.add_argument("--hint", choices=("latency", "throughput"), default="latency", help="OpenVINO only")
    parser.add_argument("--threads", type=int, default=2, help="the runtime's intra-op threads")
    parser.add_argument("--callers", type=int, default=4, help="threads sharing the runtime in 'shared'")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=32, help="batches per timed pass")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--check-rounds", type=int, default=25, help="shared passes compared with sequential answers")
    parser.add_argument("--glue-dir", default=os.environ.get("GLUE_DIR"), help="default: $GLUE_DIR")
    return parser.parse_args()


if __name__ == "__main__":
    main()
