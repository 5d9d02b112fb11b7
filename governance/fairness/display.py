"""Fairness numbers as ``warden fairness`` prints them, in direct and in remote mode.

Apart from the CLI modules, so that the remote commands import neither the audit nor torch.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def fmt(value: Any) -> str:
    """A measure as the tables print it: four decimals, a dash for none."""
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def print_audit_tables(console: Console, result: dict[str, Any]) -> None:
    """Each audited feature of an audit's ``result``: its groups, then its disparities."""
    for audit in result.get("audits", []):
        table = Table(title=str(audit["name"]))
        for col in ("group", "count", "selection", "accuracy", "TPR", "FPR", "reliable"):
            table.add_column(col)
        for g in audit["groups"]:
            table.add_row(
                str(g["label"]),
                str(g["count"]),
                fmt(g["selection_rate"]),
                fmt(g["accuracy"]),
                fmt(g["true_positive_rate"]),
                fmt(g["false_positive_rate"]),
                "yes" if g["reliable"] else "NO",
            )
        console.print(table)
        for name, d in audit["disparities"].items():
            ci = d.get("ci") or {}
            interval = f" [{fmt(ci.get('low'))}, {fmt(ci.get('high'))}]" if d.get("ci") else ""
            note = f"  ({d['note']})" if d.get("note") else ""
            console.print(f"  {name:32} {fmt(d['value'])}{interval}{note}", markup=False)


def tradeoff_table(numbers: dict[str, Any]) -> Table:
    """A mitigation's accuracy and demographic parity before, after, and their change."""
    table = Table(title=f"trade-off by {numbers['feature']} (test split)")
    for col in ("", "accuracy", "DP ratio", "DP difference", "selection rates"):
        table.add_column(col)
    for side in ("before", "after"):
        n = numbers[side]
        rates = ", ".join(f"{g} {fmt(r)}" for g, r in n["selection_rates"].items())
        table.add_row(
            side,
            fmt(n["accuracy"]),
            fmt(n["demographic_parity_ratio"]),
            fmt(n["demographic_parity_difference"]),
            rates,
        )
    c = numbers["change"]
    table.add_row(
        "change",
        fmt(c["accuracy"]),
        fmt(c["demographic_parity_ratio"]),
        fmt(c["demographic_parity_difference"]),
        "",
    )
    return table
