"""Figures of ``bench`` reports (matplotlib, Agg backend: no display needed), written atomically.

Example::

    report = run_bench(settings)
    plot_latency(report, "bench.png")
"""

from __future__ import annotations

from pathlib import Path

from ltp_deploy.errors import LtpDeployError
from ltp_deploy.outputs import save_figure

_COLORS = {"model": "tab:blue", "other": "tab:gray"}


def plot_latency(report: dict, path: str | Path, **rules) -> Path:
    """Batch latency (median, p10-p90 whiskers) against batch size; with a comparison, a speedup panel beside it.

    Args:
        report: a ``run_bench`` report (``ltp_deploy.bench.BENCH_SCHEMA``).
        path: the PNG to write; written to a temporary sibling, then renamed.
    Returns:
        ``path``.
    Raises:
        LtpDeployError: the path does not end in .png.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise LtpDeployError(f"Plot file {path} must end in .png: name it, for example, bench.png.")
    results = report["results"]
    sizes = [r["batch_size"] for r in results]
    compared = any(r.get("comparison") for r in results)
    fig, axes = plt.subplots(1, 2 if compared else 1, figsize=(11 if compared else 6, 4.2), squeeze=False)
    ax = axes[0][0]
    for role in ("model", "other"):
        rows = [r[role] for r in results if r.get(role)]
        if not rows:
            continue
        p50 = [m["latency_ms"]["p50"] for m in rows]
        low = [m["latency_ms"]["p50"] - m["latency_ms"]["p10"] for m in rows]
        high = [m["latency_ms"]["p90"] - m["latency_ms"]["p50"] for m in rows]
        info = report["models"][role]
        ax.errorbar(sizes, p50, yerr=[low, high], marker="o", capsize=4, color=_COLORS[role],
                    label=f"{role}: {Path(info['path']).name} ({info['pruning']})")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="latency per batch, ms (p50, p10-p90)",
           title=_title(report))
    _batch_axis(ax, sizes)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if compared:
        ax = axes[0][1]
        rows = [(r["batch_size"], r["comparison"]) for r in results if r.get("comparison")]
        xs = [b for b, _ in rows]
        speed = [c["speedup"] for _, c in rows]
        err = [[c["speedup"] - c["ratio_p10"] for _, c in rows], [c["ratio_p90"] - c["speedup"] for _, c in rows]]
        err = [[max(e, 0.0) for e in side] for side in err]  # pair ratios are spread around, not about, the median
        ax.errorbar(xs, speed, yerr=err, marker="o", capsize=4, color=_COLORS["model"],
                    label="speedup (median ratio; pairs p10-p90)")
        ax.plot(xs, [c["flops_reduction"] for _, c in rows], "k--", marker="s", label="FLOPs reduction")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set(xscale="log", xlabel="batch size", ylabel="model over other (x)", title="speedup vs FLOPs reduction")
        _batch_axis(ax, xs)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, **rules)


def _batch_axis(ax, sizes: list[int]) -> None:
    """Log-scaled batch sizes labelled with the sizes themselves, no minor tick labels."""
    from matplotlib.ticker import NullLocator

    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    if len(sizes) == 1:
        ax.set_xlim(sizes[0] / 2, sizes[0] * 2)


def _title(report: dict) -> str:
    env, data = report["environment"], report["data"]
    if data["synthetic"]:
        source = f"synthetic, {report['settings']['seq_len']} tokens"
    else:
        source = Path(data["source"]).parent.name or data["source"]  # e.g. "SST-2" for a GLUE file
    return f"{env['backend']} on {env['device']} ({source})"
