"""The claims plots: speedup against FLOPs reduction (with the efficiency-1 line), and metric against speedup."""

from __future__ import annotations

from pathlib import Path

from ltp_deploy.outputs import save_figure

_MARKERS = {("onnxruntime", "fp32"): "o", ("onnxruntime", "int8"): "s", ("openvino", "fp32"): "^",
            ("openvino", "int8"): "D"}


def plot_claims(report: dict, speed_png: Path, accuracy_png: Path, **rules) -> None:
    """Write both plots of a claims report (``claims.table.CLAIMS_SCHEMA``); rows without a figure are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["graph"] == "pruned"]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    top = 1.0
    for r in rows:
        if r["speedup_vs_dense"] is None or r["flops_reduction"] is None:
            continue
        top = max(top, r["speedup_vs_dense"], r["flops_reduction"])
        ax.scatter(r["flops_reduction"], r["speedup_vs_dense"], marker=_marker(r), label=_label(r))
    ax.plot([1, top * 1.1], [1, top * 1.1], "k--", lw=0.8, label="efficiency 1 (speedup = FLOPs reduction)")
    ax.set(xlabel="FLOPs reduction (x)", ylabel="speedup over the ltp-deploy dense export (x)",
           title="measured speedup against FLOPs removed")
    _finish(ax)
    save_figure(fig, speed_png, **rules)

    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for r in report["rows"]:
        speed = r["speedup_vs_optimum"] if r["speedup_vs_optimum"] is not None else r["speedup_vs_dense"]
        if speed is None or r["metric_graph"] is None:
            continue
        ax.scatter(speed, 100 * r["metric_graph"], marker=_marker(r), label=_label(r) + f" ({r['graph']})")
    optimum = any(r["speedup_vs_optimum"] is not None for r in report["rows"])
    ax.set(xlabel=f"speedup over the {'Optimum' if optimum else 'ltp-deploy'} dense export (x)",
           ylabel="dev metric (%)", title="metric against measured speedup")
    _finish(ax)
    save_figure(fig, accuracy_png, **rules)


def _marker(r: dict) -> str:
    return _MARKERS.get((r["runtime"], r["precision"]), "o")


def _label(r: dict) -> str:
    return f"{r['task']} {r['runtime']} {r['precision']} b{r['batch_size']}"


def _finish(ax) -> None:
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7)
