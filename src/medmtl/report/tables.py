"""Metrics as tables: Markdown for reports, rich for the terminal."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metric_rows(metrics: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """``(task, metric, value, 95% CI)`` for every scalar metric."""
    rows = []
    for task, values in metrics.items():
        for name, value in values.items():
            if name.endswith("_ci95") or isinstance(value, (list, dict)):
                continue
            ci = values.get(f"{name}_ci95")
            ci_text = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
            rows.append((task, name, _fmt(value), ci_text))
    return rows


def markdown_table(metrics: dict[str, dict[str, Any]]) -> str:
    lines = ["| task | metric | value | 95% CI |", "|---|---|---|---|"]
    lines += [f"| {t} | {m} | {v} | {c} |" for t, m, v, c in metric_rows(metrics)]
    return "\n".join(lines)


def rich_table(metrics: dict[str, dict[str, Any]], title: str = "metrics") -> Table:
    table = Table(title=title)
    for column in ("task", "metric", "value", "95% CI"):
        table.add_column(column)
    for row in metric_rows(metrics):
        table.add_row(*row)
    return table
