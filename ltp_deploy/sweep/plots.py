"""The sweep's picture: dev metric against FLOPs reduction, family line, trained and checkpoint points."""

from __future__ import annotations

from pathlib import Path

from ltp_deploy.outputs import save_figure


def plot_sweep(report: dict, path: str | Path, **rules) -> Path:
    """Dev metric (x100) against FLOPs reduction: the family and the trained points as lines, the dense point (a
    star), its metric less one point (dashed) and the checkpoint's own spec marked.

    Written to a temporary sibling, then renamed (matplotlib Agg backend, no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    family_points = [p for p in report["points"] if p["kind"] in ("dense", "family")]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = [p["flops_reduction"] for p in family_points]
    ys = [100 * p["metric"] for p in family_points]
    ax.plot(xs, ys, "o-", color="tab:blue", label=f"{report['mode']} family ({report['parameter']})")
    for p, x, y in zip(family_points, xs, ys):
        ax.annotate(f"{p['value']:.3g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    dense = family_points[0]
    ax.plot([dense["flops_reduction"]], [100 * dense["metric"]], "k*", markersize=12, label="dense")
    ax.axhline(100 * dense["metric"] - 1.0, color="gray", lw=0.8, ls="--", label="dense - 1 point")
    for p in report["points"]:
        if p["kind"] == "checkpoint":
            ax.plot([p["flops_reduction"]], [100 * p["metric"]], "D", color="tab:red", label="checkpoint's own spec")
    _plot_trained(ax, [p for p in report["points"] if p["kind"] == "trained"])
    ax.set(xlabel="FLOPs reduction (dense / pruned, x)", ylabel=f"dev {report['metric']} (x100)",
           title=f"{Path(report['checkpoint']).name} on {report['task']} ({report['examples']} examples)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, **rules)


def _plot_trained(ax, points: list[dict]) -> None:
    """The trained points as their own line, by FLOPs reduction, each labelled with its budget."""
    if not points:
        return
    points = sorted(points, key=lambda p: p["flops_reduction"])
    xs = [p["flops_reduction"] for p in points]
    ys = [100 * p["metric"] for p in points]
    ax.plot(xs, ys, "s-", color="tab:green", label="trained (learned thresholds)")
    for i, (p, x, y) in enumerate(zip(points, xs, ys)):  # below the marker, every other label a line lower
        text = f"trained (budget {p['budget']:g}x)" if p.get("budget") else f"trained ({Path(p['checkpoint']).name})"
        last = i == len(points) - 1 and i > 0  # the rightmost label ends at its marker, inside the axes
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(-4 if last else 4, -11 - 9 * (i % 2)),
                    ha="right" if last else "left", fontsize=7, color="tab:green")
