"""The report's charts, drawn with matplotlib (Agg, no display) as PNG bytes.

Each chart answers one question and comes with its numbers (``chart_data``): the page shows
the table beside the image and uses the alt text, so nothing is only in a picture. A chart
whose data is empty still renders, saying so, so every report has the same charts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from governance.reports.document import FairnessAuditRow, Report

CHARTS = ("requests.png", "fairness.png", "privacy.png")
_DPI = 150  # report.css prints the images at this resolution (image-resolution)
# Drawn at print size: the page's text column is 178 mm (7 in), and no text in a chart is
# smaller than 9 pt, so nothing is scaled below the document's 8 pt floor.
_WIDTH = 6.6  # inches, the axes and their labels; the fairness chart leaves room for labels
_STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.labelsize": 9,
}
_EMPTY_HEIGHT = 1.0  # inches: a chart that only says "no data" stays small
_ALLOWED, _DENIED, _OTHER, _LINE = "#3a7d44", "#c0392b", "#95a5a6", "#7b241c"


@dataclass(frozen=True)
class ChartData:
    """One chart's question, its alt text and its numbers."""

    name: str
    section: str  # the report section that shows it
    title: str
    alt: str
    columns: list[str]
    rows: list[list[str]]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No timestamp in the PNG metadata, so the same data gives the same bytes.
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


# --- requests over time ---------------------------------------------------------------------


def _requests_data(report: Report) -> ChartData:
    usage = report.usage
    rows = [
        [b.start.strftime("%Y-%m-%d %H:%M"), str(b.allowed), str(b.denied), str(b.other)]
        for b in usage.timeline
        if b.allowed or b.denied or b.other
    ]
    busiest = max(usage.timeline, key=lambda b: b.allowed + b.denied + b.other, default=None)
    alt = (
        f"Stacked bars of allowed, denied and other API calls per {usage.bucket_seconds // 60}"
        f"-minute interval over the period: {usage.allowed} allowed, {usage.denied} denied, "
        f"{usage.other} other"
        + (
            f"; the busiest interval starts {busiest.start:%Y-%m-%d %H:%M} UTC."
            if busiest is not None and rows
            else "; no calls."
        )
    )
    return ChartData(
        "requests.png",
        "usage",
        "Calls and denials over time",
        alt,
        ["interval start (UTC)", "allowed", "denied", "other"],
        rows,
    )


def requests_chart(report: Report) -> bytes:
    """Allowed, denied and other calls per bucket, on an axis spanning the whole period."""
    usage, meta = report.usage, report.meta
    busy = any(b.allowed or b.denied or b.other for b in usage.timeline)
    fig, ax = plt.subplots(figsize=(_WIDTH, 2.6 if busy else _EMPTY_HEIGHT))
    if not busy:
        _empty(ax, "no API calls in this period")
    else:
        starts = [mdates.date2num(b.start) for b in usage.timeline]
        w = usage.bucket_seconds / 86400 * 0.85
        allowed = [b.allowed for b in usage.timeline]
        denied = [b.denied for b in usage.timeline]
        other = [b.other for b in usage.timeline]
        ax.bar(starts, allowed, width=w, align="edge", color=_ALLOWED, label="allowed")
        ax.bar(starts, denied, width=w, align="edge", bottom=allowed, color=_DENIED, label="denied")
        ax.bar(
            starts,
            other,
            width=w,
            align="edge",
            bottom=[a + d for a, d in zip(allowed, denied, strict=True)],
            color=_OTHER,
            label="other",
        )
        # The axis is the period, not the busy buckets: one busy minute is a narrow bar.
        ax.set_xlim(mdates.date2num(meta.period_from), mdates.date2num(meta.period_to))
        ax.set_ylabel("calls")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        span = meta.period_to - meta.period_from
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=8))
        ax.xaxis.set_major_formatter(
            mdates.DateFormatter("%H:%M" if span.total_seconds() <= 86400 else "%Y-%m-%d")
        )
        ax.set_xlabel(f"{meta.period_from:%Y-%m-%d %H:%M} to {meta.period_to:%Y-%m-%d %H:%M} UTC")
        ax.grid(axis="y", color="#ddd", linewidth=0.6)
        ax.set_axisbelow(True)
    ax.set_title(f"Calls per {usage.bucket_seconds // 60} min (UTC)")
    return _png(fig)


# --- fairness -------------------------------------------------------------------------------


def _ratio_threshold(report: Report) -> float | None:
    """The demographic-parity ratio floor of the latest thresholds (the four-fifths rule)."""
    if not report.fairness.thresholds:
        return None
    doc = report.fairness.thresholds[-1].document
    bound = (doc.get("defaults") or {}).get("demographic_parity_ratio") or {}
    value = bound.get("min") if isinstance(bound, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _latest_audit(report: Report) -> FairnessAuditRow | None:
    return report.fairness.audits[-1] if report.fairness.audits else None


def _fairness_data(report: Report) -> ChartData:
    audit, floor = _latest_audit(report), _ratio_threshold(report)
    rows: list[list[str]] = []
    below: list[str] = []
    if audit is not None:
        for feature in audit.features:
            reliable = [
                g.selection_rate
                for g in feature.groups
                if g.reliable and g.selection_rate is not None
            ]
            line = floor * max(reliable) if floor is not None and reliable else None
            for g in feature.groups:
                ci = g.selection_rate_ci
                if line is not None and g.reliable and (g.selection_rate or 0.0) < line:
                    below.append(f"{feature.name} {g.label}")
                rows.append(
                    [
                        feature.name,
                        g.label,
                        str(g.count),
                        _fmt(g.selection_rate),
                        "—" if ci is None else f"[{_fmt(ci.low)}, {_fmt(ci.high)}]",
                        _fmt(line),
                        _judged(g.reliable, g.selection_rate, line),
                    ]
                )
    if audit is None:
        alt = "No fairness audit in this period."
    else:
        alt = (
            f"Horizontal bars of the selection rate per group for {audit.model} "
            f"{audit.model_version or ''} (audit {audit.id}), with confidence intervals and group "
            "sizes; a red line marks the lowest rate the four-fifths rule allows. "
            + (
                f"Below the line: {', '.join(below)}."
                if below
                else "No reliable group is below the line."
            )
        )
    return ChartData(
        "fairness.png",
        "fairness",
        "Selection rate by group against the threshold",
        alt,
        ["feature", "group", "rows", "selection rate", "interval", "lowest allowed", "judged"],
        rows,
    )


def _judged(reliable: bool, rate: float | None, line: float | None) -> str:
    if not reliable:
        return "excluded: too few rows"
    if rate is None or line is None:
        return "—"
    return "below" if rate < line else "meets"


def fairness_chart(report: Report) -> bytes:
    """Selection rate by group of the period's latest audit, with intervals, group sizes and
    the lowest rate the ratio threshold allows in each feature."""
    audit, floor = _latest_audit(report), _ratio_threshold(report)
    bars = [
        (feature.name, g) for feature in (audit.features if audit else []) for g in feature.groups
    ]
    bars = [(f, g) for f, g in bars if g.selection_rate is not None]
    height = max(2.2, 0.34 * len(bars) + 1.1) if bars else _EMPTY_HEIGHT
    fig, ax = plt.subplots(figsize=(_WIDTH - 2.2, height))
    if audit is None or not bars:
        _empty(ax, "no fairness audit in this period")
        ax.set_title("Selection rate by group")
        return _png(fig)
    positions = list(range(len(bars)))
    rates = [g.selection_rate or 0.0 for _, g in bars]
    low = [
        max(0.0, r - g.selection_rate_ci.low)
        if g.selection_rate_ci and g.selection_rate_ci.low is not None
        else 0.0
        for r, (_, g) in zip(rates, bars, strict=True)
    ]
    high = [
        max(0.0, g.selection_rate_ci.high - r)
        if g.selection_rate_ci and g.selection_rate_ci.high is not None
        else 0.0
        for r, (_, g) in zip(rates, bars, strict=True)
    ]
    colours = ["#2e86c1" if g.reliable else "#bbbbbb" for _, g in bars]
    ax.barh(positions, rates, xerr=[low, high], color=colours, capsize=3, error_kw={"lw": 0.8})
    labels = [
        f"{f}: {g.label} (n={g.count})" + ("" if g.reliable else ", excluded") for f, g in bars
    ]
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    if floor is not None:
        i = 0
        for feature in audit.features:
            shown = [g for g in feature.groups if g.selection_rate is not None]
            reliable = [g.selection_rate or 0.0 for g in shown if g.reliable]
            if shown and reliable:
                line = floor * max(reliable)
                ax.vlines(
                    line,
                    i - 0.45,
                    i + len(shown) - 0.55,
                    colors=_LINE,
                    linestyles="--",
                    label="_nolegend_" if i else f"{floor:g} × highest rate",
                )
            i += len(shown)
        ax.legend(loc="lower right", frameon=False)
    ax.set_xlim(0, min(1.0, max(r + h for r, h in zip(rates, high, strict=True)) * 1.15 + 0.02))
    ax.set_xlabel("selection rate")
    level = f"{audit.confidence_level:.0%} interval" if audit.confidence_level else "interval"
    ax.set_title(
        f"Selection rate by group: {audit.model} {audit.model_version or ''} ({level})",
    )
    ax.grid(axis="x", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return _png(fig)


# --- privacy --------------------------------------------------------------------------------


def _privacy_data(report: Report) -> ChartData:
    privacy = report.privacy
    if privacy.datasets:
        rows = [
            [
                d.dataset,
                "unbounded" if d.spent_epsilon is None else _fmt(d.spent_epsilon),
                _fmt(d.cap_epsilon),
                "—"
                if d.spent_epsilon is None or not d.cap_epsilon
                else f"{d.spent_epsilon / d.cap_epsilon:.0%}",
                str(len(d.runs)),
            ]
            for d in privacy.datasets
        ]
        over = [r[0] for r, d in zip(rows, privacy.datasets, strict=True) if _over(d)]
        alt = (
            "Horizontal bars of the privacy budget (epsilon) spent per dataset, each against "
            "its cap. " + (f"Over or at the cap: {', '.join(over)}." if over else "All within.")
        )
        return ChartData(
            "privacy.png",
            "privacy",
            "Privacy budget spent against the cap",
            alt,
            ["dataset", "ε spent", "ε cap", "share of cap", "runs"],
            rows,
        )
    models = [m for m in privacy.models if m.private and m.epsilon is not None]
    rows = [[f"{m.model} {m.version}", _fmt(m.epsilon), "—", "—", "—"] for m in models]
    alt = (
        "Bars of the differential-privacy epsilon of each private model version."
        if models
        else "No differentially private training recorded."
    )
    return ChartData(
        "privacy.png",
        "privacy",
        "Privacy budget spent against the cap",
        alt,
        ["dataset or model", "ε spent", "ε cap", "share of cap", "runs"],
        rows,
    )


def _over(d: Any) -> bool:
    if d.cap_epsilon is None:
        return False
    return d.spent_epsilon is None or d.spent_epsilon >= d.cap_epsilon


def privacy_chart(report: Report) -> bytes:
    """Budget spent per dataset against its cap (or each model's ε without a ledger)."""
    datasets = report.privacy.datasets
    models = [m for m in report.privacy.models if m.private and m.epsilon is not None]
    n = len(datasets) or len(models)
    fig, ax = plt.subplots(figsize=(_WIDTH - 0.8, max(2.0, 0.45 * n + 1.0) if n else _EMPTY_HEIGHT))
    if datasets:
        names = [d.dataset for d in datasets]
        # An unbounded spend (a non-private run was charged) is drawn at the cap: it is gone.
        spent = [
            d.spent_epsilon if d.spent_epsilon is not None else (d.cap_epsilon or 0.0)
            for d in datasets
        ]
        positions = list(range(len(names)))
        colours = [_DENIED if _over(d) else "#8e44ad" for d in datasets]
        ax.barh(positions, spent, color=colours, height=0.5, label="ε spent")
        for i, d in enumerate(datasets):
            if d.cap_epsilon is not None:
                ax.vlines(
                    d.cap_epsilon,
                    i - 0.35,
                    i + 0.35,
                    colors=_LINE,
                    label="_nolegend_" if i else "cap",
                )
            label = "unbounded" if d.spent_epsilon is None else _fmt(d.spent_epsilon)
            ax.annotate(
                f"{label} of {_fmt(d.cap_epsilon)}",
                (spent[i], i),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
            )
        ax.set_yticks(positions, names)
        ax.invert_yaxis()
        top = max([*spent, *(d.cap_epsilon or 0.0 for d in datasets)], default=1.0)
        ax.set_xlim(0, top * 1.35 or 1.0)
        ax.set_xlabel("ε (PRV-composed)")
        ax.legend(loc="lower right", frameon=False)
        ax.set_title("Privacy budget spent per dataset against its cap")
    elif models:
        ax.barh(
            [f"{m.model} {m.version}" for m in models],
            [m.epsilon or 0.0 for m in models],
            color="#8e44ad",
            height=0.5,
        )
        ax.invert_yaxis()
        ax.set_xlabel("ε")
        ax.set_title("DP guarantee per model version (no ledger installed)")
    else:
        _empty(ax, "no differentially private training recorded")
        ax.set_title("Privacy budget")
    return _png(fig)


def chart_data(report: Report) -> list[ChartData]:
    """Each chart's question, alt text and numbers, in ``CHARTS`` order."""
    return [_requests_data(report), _fairness_data(report), _privacy_data(report)]


def render_charts(report: Report) -> dict[str, bytes]:
    """The charts by file name."""
    with plt.rc_context(_STYLE):
        return {
            "requests.png": requests_chart(report),
            "fairness.png": fairness_chart(report),
            "privacy.png": privacy_chart(report),
        }
