"""The training ablation of issue 13: each technique on and off at the same FLOPs budget, same seeds, one dense model.

    python scripts/ablation.py run DENSE OUT [--task sst2] [--target 2.0] [--only NAME,...]
    python scripts/ablation.py table OUT

``run`` trains each variant below from the fine-tuned dense checkpoint DENSE (stage 0 is then skipped, so every
variant starts from the same weights and seeds) into OUT/<name>, skipping a variant whose folder already holds a
finished checkpoint; ``table`` reads each checkpoint's ``ltp_deploy.json`` and writes OUT/ablation.{md,json}: dev
metric, drop against the dense model, FLOPs reduction reached on dev, kept tokens per layer and training time.
Training times are only comparable between variants trained one at a time on an otherwise idle machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# name -> (what it changes, extra `ltp-deploy train` options). "default" is the shipped recipe; every other row
# turns one technique off (or on) against it.
VARIANTS = {
    "default": ("the default recipe", []),
    "ltp-soft-masking": ("stage 1 masks layer outputs (LTP's) instead of attention", ["--soft-masking", "outputs"]),
    "expected-flops": ("stage 1's budget counts the soft masks' expected FLOPs (ToP's), not the hard rule's",
                       ["--budget-counts", "expected"]),
    "fixed-temperature": ("T stays at 1e-3 through stage 1", ["--final-temperature", "1e-3"]),
    "no-budget-warmup": ("stage 1 aims at the budget from its first step", ["--budget-warmup", "0"]),
    "no-distill": ("stage 2 on labels only", ["--distill", "0"]),
    "soft-distill": ("stage 1 distils from the dense model too", ["--soft-distill"]),
    "hidden-distill": ("stage 2 also matches the dense model's last CLS row", ["--distill-hidden", "1.0"]),
    "long-hard": ("stage 2 three times as long (3000 steps)", ["--hard-steps", "3000"]),
    "long-soft": ("stage 1 three times as long (1200 steps, warm-up 0.25)",
                  ["--soft-steps", "1200", "--budget-warmup", "0.25"]),
    "rank-distill": ("stage 1 adds ToP's ranking distillation: each pruning layer's scores learn the dense model's "
                     "last-layer importance (--rank-distill 1)", ["--rank-distill", "1.0"]),
    "rank-distill-0.1": ("the same at a tenth of the weight (--rank-distill 0.1)", ["--rank-distill", "0.1"]),
    "learned-scorer": ("the score is a learned linear scorer per layer on the attention block's output (--scorer "
                       "learned), not the attention each token receives", ["--scorer", "learned"]),
    "previous-default": ("the previous default: LTP's masking, expected FLOPs, fixed T, no warm-up, 200 soft steps",
                         ["--soft-masking", "outputs", "--budget-counts", "expected", "--final-temperature", "1e-3",
                          "--budget-warmup", "0", "--soft-steps", "200", "--threshold-lr", "5e-5",
                          "--lagrangian-lr", "0.01"]),
}


def run(dense: str, out: Path, task: str, target: float, only: list[str] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (_, extra) in VARIANTS.items():
        if only and name not in only:
            continue
        folder = out / name
        if (folder / "ltp_deploy.json").is_file():
            print(f"{name}: done already ({folder})", flush=True)
            continue
        cmd = ["ltp-deploy", "train", "--model", dense, "--task", task, "--target-flops-reduction", str(target),
               "-o", str(folder), *extra]
        print("$ " + " ".join(cmd), flush=True)
        with open(out / f"{name}.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)


def table(out: Path) -> None:
    rows = []
    for name, (what, extra) in VARIANTS.items():
        meta_file = out / name / "ltp_deploy.json"
        if not meta_file.is_file():
            continue
        meta = json.loads(meta_file.read_text())
        dev, dense = meta["dev"], meta["dense"]["dev"]
        rows.append({"variant": name, "change": what, "options": " ".join(extra), "metric": dev["metric"],
                     "dense": 100 * dense["value"], "pruned": 100 * dev["value"],
                     "drop_points": meta["metric_drop_points"], "flops_reduction": dev["flops_reduction"],
                     "mean_kept_per_layer": dev["mean_kept_per_layer"],
                     "after_soft_stage": 100 * meta["after_soft_stage"]["value"],
                     "after_soft_stage_flops_reduction": meta["after_soft_stage"]["flops_reduction"],
                     "train_minutes": meta["train_seconds"] / 60})
    lines = ["| variant | change | dense | after stage 1 (hard rule) | pruned | drop | FLOPs reduction | "
             "kept per layer | train min |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = ", ".join(f"{k:.1f}" for k in r["mean_kept_per_layer"])
        lines.append(f"| {r['variant']} | {r['change']} | {r['dense']:.2f} | "
                     f"{r['after_soft_stage']:.2f} at {r['after_soft_stage_flops_reduction']:.2f}x | "
                     f"{r['pruned']:.2f} | {r['drop_points']:.2f} | {r['flops_reduction']:.2f}x | {kept} | "
                     f"{r['train_minutes']:.0f} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps({"kind": "ltp-deploy-ablation", "rows": rows}, indent=1))
    print("\n".join(lines))


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "run":
        opts = dict(zip(argv[3::2], argv[4::2]))
        only = opts.get("--only")
        run(argv[1], Path(argv[2]), opts.get("--task", "sst2"), float(opts.get("--target", 2.0)),
            only.split(",") if only else None)
    elif len(argv) == 2 and argv[0] == "table":
        table(Path(argv[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
