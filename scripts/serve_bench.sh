#!/usr/bin/env bash
# The serving figures (issue 15): each export served by `ltp-deploy serve` (1 replica, 2 threads) and loaded by
# `ltp-deploy loadtest` with the task's dev sentences, one per request, at concurrency 32 (every answer verified
# against the graph run directly); servers A B A B behind HAProxy, then once each behind Ray's proxy; then
# `bench` of the same two graphs at batch 32 (interleaved), the yardstick of the server's throughput.
#   bash scripts/serve_bench.sh PRUNED_EXPORT DENSE_EXPORT [OUT] [TASK]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
pruned=${1:?usage: bash scripts/serve_bench.sh PRUNED_EXPORT DENSE_EXPORT [OUT] [TASK]}
dense=${2:?usage: bash scripts/serve_bench.sh PRUNED_EXPORT DENSE_EXPORT [OUT] [TASK]}
out=${3:-runs/serve}
task=${4:-sst2}
port=${PORT:-8000}
mkdir -p "$out"
serve_and_load() {  # NAME EXPORT INGRESS
  ltp-deploy serve "$2" --threads 2 --port "$port" --ingress "$3" --batch-wait-ms "${BATCH_WAIT_MS:-25}" \
    2> "$out/$1.server.log" &
  local pid=$!
  for _ in $(seq 1 120); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 2; done
  ltp-deploy loadtest "http://127.0.0.1:$port" --task "$task" --concurrency 32 --verify "$2" \
    --json "$out/$1.json" --overwrite || true
  kill -INT "$pid"; wait "$pid" || true
}
for round in 1 2; do
  serve_and_load "pruned-haproxy-$round" "$pruned" haproxy
  serve_and_load "dense-haproxy-$round" "$dense" haproxy
done
serve_and_load pruned-proxy-1 "$pruned" proxy
serve_and_load dense-proxy-1 "$dense" proxy
ltp-deploy bench "$pruned" --compare "$dense" --task "$task" --batch-size 32 --threads 2 --warmup 10 \
  --json "$out/bench.json" --overwrite
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
r = json.loads((out / "bench.json").read_text())["results"][0]
bench = {"pruned": r["model"]["sequences_per_s"], "dense": r["other"]["sequences_per_s"]}
print(f"bench batch 32: pruned {bench['pruned']:.1f}/s, dense {bench['dense']:.1f}/s, interleaved speedup "
      f"x{r['comparison']['speedup']:.2f}")
print("| server | ingress | requests/s | share of bench b32 | p50 ms | p99 ms | errors | dropped | wrong |")
print("|---|---|---|---|---|---|---|---|---|")
served = {}
for file in sorted(out.glob("*-*-[0-9].json")):
    name, ingress, _ = file.stem.split("-")
    rep = json.loads(file.read_text())
    rps = rep["throughput"]["requests_per_s"]
    served.setdefault((name, ingress), []).append(rps)
    print(f"| {file.stem} | {ingress} | {rps:.1f} | {rps / bench[name]:.2f} | {rep['latency_ms']['p50']:.0f} | "
          f"{rep['latency_ms']['p99']:.0f} | {rep['errors']} | {rep['dropped']} | {rep['verify']['wrong']} |")
for ingress in ("haproxy", "proxy"):
    if (("pruned", ingress) in served) and (("dense", ingress) in served):
        ratio = (sum(served["pruned", ingress]) / len(served["pruned", ingress])) / (
            sum(served["dense", ingress]) / len(served["dense", ingress]))
        print(f"{ingress}: served pruned / dense x{ratio:.2f}, {ratio / r['comparison']['speedup']:.2f} of the "
              f"bench ratio x{r['comparison']['speedup']:.2f}")
PY
