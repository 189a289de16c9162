"""How a dense graph's batch-1 time scales with its real token count: the ceiling on batch-1 pruning efficiency.

    python scripts/token_scaling.py EXPORT [--tokens 3,6,12,25,50] [--rounds 300] [--threads 2] [--json OUT]

EXPORT is a dense export folder or graph (``ltp-deploy export CKPT --dense``, or an Optimum folder). One sentence of
N real tokens (batch 1) is timed for every N in turn, round after round (A B C A B C: the machine's drift hits all
alike), on ONNX Runtime and on OpenVINO. Each row gives the median time, the speed relative to the reference N
(the last of --tokens' values that is at most 25, SST-2's mean dev length), the FLOPs ratio the same way
(``ltp_deploy.flops.dense_flops``) and their quotient: the efficiency a pruned graph that runs N tokens in every
layer could reach at best on this runtime.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from ltp_deploy.artifact import open_model_artifact
from ltp_deploy.errors import LtpDeployError
from ltp_deploy.flops import dense_flops
from ltp_deploy.runtimes import open_runtime


def _feed(n: int) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(n).integers(1000, 5000, (1, n)).astype(np.int64)
    ids[0, 0], ids[0, -1] = 101, 102
    return {"input_ids": ids, "attention_mask": np.ones((1, n), np.int64),
            "token_type_ids": np.zeros((1, n), np.int64)}


def measure(path: str, tokens: list[int], rounds: int, threads: int) -> list[dict]:
    artifact = open_model_artifact(path)
    if artifact is None:
        raise LtpDeployError(f"{path} is not an export or a dense ONNX folder: give `ltp-deploy export CKPT --dense` "
                             "output or an Optimum export.")
    cfg = artifact.config
    ref = max([n for n in tokens if n <= 25] or tokens[:1])
    rows = []
    for backend in ("onnxruntime", "openvino"):
        rt = open_runtime(path, backend=backend, threads=threads)
        feeds = {n: _feed(n) for n in tokens}
        times = {n: [] for n in tokens}
        for n in tokens:  # warm-up, untimed
            for _ in range(10):
                rt.run(feeds[n])
        for _ in range(rounds):
            for n in tokens:
                start = time.perf_counter()
                rt.run(feeds[n])
                times[n].append(time.perf_counter() - start)
        med = {n: float(np.median(times[n])) for n in tokens}
        for n in tokens:
            speed = med[ref] / med[n]
            flops = float(dense_flops(cfg, np.array([ref]))[0] / dense_flops(cfg, np.array([n]))[0])
            rows.append({"runtime": backend, "tokens": n, "p50_ms": round(1e3 * med[n], 3),
                         "speed_vs_ref": round(speed, 3), "flops_ratio_vs_ref": round(flops, 3),
                         "efficiency": round(speed / flops, 3), "reference_tokens": ref})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export")
    ap.add_argument("--tokens", default="3,6,12,25,50")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        rows = measure(a.export, [int(t) for t in a.tokens.split(",")], a.rounds, a.threads)
    except LtpDeployError as e:
        sys.exit(f"error: {e}")
    print(f"{'runtime':12s} {'tokens':>6s} {'p50 ms':>8s} {'speed':>7s} {'FLOPs':>7s} {'eff.':>6s}")
    for r in rows:
        print(f"{r['runtime']:12s} {r['tokens']:6d} {r['p50_ms']:8.3f} x{r['speed_vs_ref']:<6.2f} "
              f"x{r['flops_ratio_vs_ref']:<6.2f} {r['efficiency']:6.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"kind": "ltp-deploy-token-scaling", "schema_version": 1, "export": a.export,
                       "threads": a.threads, "rounds": a.rounds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
