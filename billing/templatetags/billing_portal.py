"""Presentation for billing's figures in the portal: money as the API shows it, and the SVG charts (billing/charts.py)."""
from __future__ import annotations

from django import template

from billing import charts
from billing.money import money_text

register = template.Library()


@register.filter
def money(amount) -> str:
    """A Decimal as a string decimal with 4 to 6 places ("0.0079"); empty for None."""
    return money_text(amount) or ""


@register.inclusion_tag("portal/billing/_column_chart.html")
def column_chart(points, *, chart_id: str, title: str, unit: str = "", label_heading: str = "Day") -> dict:
    """One vertical bar per (label, value), with a table of the same figures."""
    return {"chart": charts.column_chart(points, unit=unit), "chart_id": chart_id, "title": title,
            "points": points, "unit": unit, "label_heading": label_heading}


@register.inclusion_tag("portal/billing/_row_chart.html")
def row_chart(rows, *, chart_id: str, title: str, series, unit: str = "") -> dict:
    """One group of horizontal bars per (label, [value per series]) (a country: ours, direct)."""
    return {"chart": charts.row_chart(rows, series=series, unit=unit), "chart_id": chart_id, "title": title,
            "series": series}
