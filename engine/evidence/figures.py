"""The report's PNG figures (matplotlib, Agg backend: files only, no display)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    import io

    from engine.runs import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def accuracy_vs_macs(arms: dict[str, dict], path: Path) -> None:
    """Test accuracy (mean, error bar = sd over seeds) against MACs, one point per arm."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, r in arms.items():
        ax.errorbar(r["macs"]["mean"] / 1e6, r["test_acc"]["mean"], yerr=r["test_acc"]["sd"] or 0.0,
                    fmt="o", capsize=4, label=arm)
    ax.set_xlabel("MACs (millions)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy at the same budget (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def keep_ratios(series: dict[str, list[float]], groups: list[str], path: Path) -> None:
    """Per-layer kept fraction of each arm (mean over seeds), side by side."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(groups)), 4))
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    for i, (arm, ratios) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, ratios, width, label=arm)
    ax.set_xticks(x, groups, rotation=90, fontsize=7)
    ax.set_ylabel("kept fraction of channels")
    ax.set_ylim(0, 1.05)
    ax.set_title("per-layer keep ratios (mean over seeds)")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def correlation_maps(arm: str, by_epoch: dict[str, dict], path: Path) -> None:
    """One seeds x seeds heat-map of keep-ratio correlation per pre-training epoch count."""
    plt = _plt()
    epochs = sorted(by_epoch, key=int)
    fig, axes = plt.subplots(1, len(epochs), figsize=(3.2 * len(epochs), 3.2), squeeze=False)
    for ax, e in zip(axes[0], epochs):
        entry = by_epoch[e]
        m = np.array([[np.nan if v is None else v for v in row] for row in entry["matrix"]], dtype=float)
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        seeds = entry["seeds"]
        ax.set_xticks(range(len(seeds)), seeds)
        ax.set_yticks(range(len(seeds)), seeds)
        mean = entry.get("mean")
        ax.set_title(f"{e} epochs: mean {mean:.2f}" if mean is not None else f"{e} epochs", fontsize=9)
        ax.set_xlabel("seed")
    axes[0][0].set_ylabel("seed")
    fig.suptitle(f"{arm}: correlation of keep ratios across seeds")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    _save(fig, path)
    plt.close(fig)
