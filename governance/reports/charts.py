"""The report's three charts, drawn with matplotlib (Agg, no display) as PNG bytes.

A chart whose data is empty still renders, saying so, so every report has the same files.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from governance.reports.document import GroupRow, Report

CHARTS = ("requests.png", "fairness.png", "privacy.png")
_DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No timestamp in the PNG metadata, so the same data gives the same bytes.
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def requests_chart(report: Report) -> bytes:
    """Allowed and denied requests per time bucket."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    buckets = report.usage.timeline
    if not buckets:
        _empty(ax, "no API calls in this period")
    else:
        times = mdates.date2num([b.start for b in buckets])
        width = report.usage.bucket_seconds / 86400 * 0.9
        ax.bar(times, [b.allowed for b in buckets], width=width, color="#3a7d44", label="allowed")
        ax.bar(
            times,
            [b.denied for b in buckets],
            width=width,
            color="#c0392b",
            label="denied",
            bottom=[b.allowed for b in buckets],
        )
        ax.set_ylabel("requests")
        ax.legend(loc="upper left")
        ax.xaxis_date()
        fig.autofmt_xdate()
    ax.set_title(f"Requests and denials per {report.usage.bucket_seconds // 60} min (UTC)")
    return _png(fig)


def fairness_chart(report: Report) -> bytes:
    """Selection rate by group, with confidence intervals, of the period's latest audit."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    audit = report.fairness.audits[-1] if report.fairness.audits else None
    groups: list[tuple[str, GroupRow]] = []
    if audit is not None:
        for feature in audit.features:
            groups.extend(
                (f"{feature.name}: {g.label}", g)
                for g in feature.groups
                if g.selection_rate is not None
            )
    if audit is None or not groups:
        _empty(ax, "no fairness audit in this period")
        ax.set_title("Selection rate by group")
        return _png(fig)
    labels = [label for label, _ in groups]
    rates = [g.selection_rate or 0.0 for _, g in groups]
    low = [
        max(0.0, r - g.selection_rate_ci.low)
        if g.selection_rate_ci and g.selection_rate_ci.low is not None
        else 0.0
        for r, (_, g) in zip(rates, groups, strict=True)
    ]
    high = [
        max(0.0, g.selection_rate_ci.high - r)
        if g.selection_rate_ci and g.selection_rate_ci.high is not None
        else 0.0
        for r, (_, g) in zip(rates, groups, strict=True)
    ]
    positions = list(range(len(labels)))
    ax.barh(positions, rates, xerr=[low, high], color="#2e86c1", capsize=3)
    ax.set_yticks(positions, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("selection rate")
    level = f"{audit.confidence_level:.0%} CI" if audit.confidence_level else "CI"
    ax.set_title(f"Selection rate by group, {audit.model} {audit.model_version or ''} ({level})")
    return _png(fig)


def privacy_chart(report: Report) -> bytes:
    """Budget spent per dataset against its cap (or each model's ε without a ledger)."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    datasets = report.privacy.datasets
    models = [m for m in report.privacy.models if m.private and m.epsilon is not None]
    if datasets:
        names = [d.dataset for d in datasets]
        # An unbounded spend (a non-private run) is drawn at the cap: the budget is gone.
        spent = [
            d.spent_epsilon if d.spent_epsilon is not None else (d.cap_epsilon or 0.0)
            for d in datasets
        ]
        ax.bar(names, spent, color="#8e44ad", label="ε spent")
        caps = [d.cap_epsilon for d in datasets]
        for i, cap in enumerate(caps):
            if cap is not None:
                ax.hlines(
                    cap, i - 0.4, i + 0.4, colors="#c0392b", label="_nolegend_" if i else "cap"
                )
        ax.set_ylabel("ε")
        ax.legend()
        ax.set_title("Privacy budget per dataset (PRV-composed ε)")
    elif models:
        ax.bar(
            [f"{m.model}:{m.version}" for m in models],
            [m.epsilon or 0.0 for m in models],
            color="#8e44ad",
        )
        ax.set_ylabel("ε")
        ax.set_title("DP guarantee per model version (no ledger installed)")
    else:
        _empty(ax, "no differentially private training recorded")
        ax.set_title("Privacy budget")
    return _png(fig)


def render_charts(report: Report) -> dict[str, bytes]:
    """The three charts by file name."""
    return {
        "requests.png": requests_chart(report),
        "fairness.png": fairness_chart(report),
        "privacy.png": privacy_chart(report),
    }
