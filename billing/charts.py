"""Bar geometry for the portal's server-rendered SVG charts (no chart library, no JavaScript): the templates in
templates/portal/billing/_column_chart.html and _row_chart.html draw what these return, each bar with its own
<title>, and a table of the same figures beside it for screen readers and for anyone who wants the numbers."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing.money import money_text


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: Decimal
    title: str  # what the bar's <title> says: "2026-12-01: 0.4200 EUR"
    series: int = 0  # which series (row charts: 0 ours, 1 direct)


def _scale(values: Sequence[Decimal]) -> Decimal:
    top = max(values, default=Decimal(0))
    return top if top > 0 else Decimal(1)


def column_chart(points: Sequence[tuple[str, Decimal]], *, unit: str = "", width: int = 720, height: int = 180,
                 gap: float = 2) -> dict:
    """Vertical bars, one per point (a day's spend), left to right, scaled to the largest value; a zero value is a
    bar of height 0 (still there, with its title). Returns the SVG's size, the bars, a few x labels and the top."""
    top, count = _scale([value for _label, value in points]), max(len(points), 1)
    step = width / count
    bars = [Bar(x=round(i * step + gap / 2, 2), y=round(height - float(value / top) * height, 2),
                width=round(max(step - gap, 1), 2), height=round(float(value / top) * height, 2), label=label,
                value=value, title=f"{label}: {money_text(value)} {unit}".strip())
            for i, (label, value) in enumerate(points)]
    every = max(1, count // 5)  # about five labels under the axis
    labels = [{"x": round(bar.x + bar.width / 2, 2), "text": bar.label} for i, bar in enumerate(bars)
              if i % every == 0 or i == count - 1]
    return {"width": width, "height": height, "bars": bars, "labels": labels, "top": money_text(top), "unit": unit}


def row_chart(rows: Sequence[tuple[str, Sequence[Decimal]]], *, series: Sequence[str] = ("",), unit: str = "",
              width: int = 640,
              bar_height: int = 14, label_width: int = 48) -> dict:
    """Horizontal bars, one group per row (a country) with one bar per series (ours, and the direct cost),
    scaled to the largest value of any series."""
    top = _scale([value for _label, values in rows for value in values])
    room = width - label_width - 8
    group = bar_height * max((len(values) for _label, values in rows), default=1) + 10
    bars, labels = [], []
    for i, (label, values) in enumerate(rows):
        y0 = i * group
        labels.append({"y": y0 + group / 2, "text": label})
        for s, value in enumerate(values):
            bars.append(Bar(x=label_width, y=y0 + s * bar_height, width=round(float(value / top) * room, 2),
                            height=bar_height - 2, label=label, value=value, series=s,
                            title=f"{label} {series[s] if s < len(series) else ''}".strip()
                            + f": {money_text(value)} {unit}".rstrip()))
    return {"width": width, "height": max(group * len(rows), group), "bars": bars, "labels": labels,
            "label_width": label_width, "top": money_text(top), "unit": unit, "series": list(series)}
