"""Usage for billing: the arithmetic of NumberUsage rows (seconds held per UTC day, holdings counted
once on their first day), shared by every writer in numbers/services.py (releases, the expiry sweep,
the daily job for open holdings). Callers hold the holdings' row locks; see usage_add."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from numbers.models import NumberAssignment, NumberLease, NumberUsage

from django.db.models import F


def usage_record(*, spans: list[tuple[NumberAssignment | NumberLease, datetime]], kind: str) -> None:
    """Adds the usage of each holding not recorded yet, up to its end in `spans`: from
    `usage_recorded_until` when the daily job has recorded some, else from the start, which then
    counts the holding (once, on its first day). Call with the holdings' rows locked and re-read."""
    usage_add({
        (holding.tenant_id, holding.number_id, kind, day): amounts
        for holding, end in spans
        for day, amounts in usage_days(holding.usage_recorded_until or holding.started_at, end,
                                        first=holding.usage_recorded_until is None)
    })


def usage_days(start: datetime, end: datetime, *, first: bool = True) -> list[tuple[date, tuple[int, int]]]:
    """Seconds held on each UTC day from `start` to `end`; with `first` (the holding starts at
    `start`), one holding on that day, even when no second has passed. Nothing when `end <= start`
    and not `first`."""
    cursor, end, days = start.astimezone(UTC), end.astimezone(UTC), []
    while cursor < end or (first and not days):
        midnight = datetime.combine(cursor.date() + timedelta(days=1), time.min, tzinfo=UTC)
        upto = min(end, midnight)
        days.append((cursor.date(), (max(0, int((upto - cursor).total_seconds())), int(first and not days))))
        cursor = upto
    return days


def usage_add(amounts: dict[tuple[int, int, str, date], tuple[int, int]]) -> None:
    """Adds (seconds, holdings) to the rows keyed (tenant, number, kind, day): one UPDATE per existing
    row, one INSERT for all new ones. One number's rows are written by one holding at a time (one
    active holding; an earlier one was recorded when it ended), and that holding's writers (the
    daily job, its release) hold its row lock, so no other writer adds the same new row meanwhile;
    if one did, the unique constraint fails the caller's transaction rather than count twice."""
    if not amounts:
        return
    # unscoped: usage rows of many tenants at once (sweeps, the daily job)
    existing = NumberUsage.unscoped.filter(number_id__in={key[1] for key in amounts},
                                           day__in={key[3] for key in amounts})
    found = {(u.tenant_id, u.number_id, u.kind, u.day): u.pk for u in existing if
             (u.tenant_id, u.number_id, u.kind, u.day) in amounts}
    for key, pk in found.items():
        seconds, holdings = amounts[key]
        NumberUsage.unscoped.filter(pk=pk).update(seconds=F("seconds") + seconds, holdings=F("holdings") + holdings)
    NumberUsage.unscoped.bulk_create(
        NumberUsage(tenant_id=key[0], number_id=key[1], kind=key[2], day=key[3], seconds=seconds, holdings=holdings)
        for key, (seconds, holdings) in amounts.items() if key not in found
    )
