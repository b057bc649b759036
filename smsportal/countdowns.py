"""The longest Celery countdown each task may use, checked against the broker's visibility timeout.

On Redis a task with a countdown (an ETA) is fetched at once and held, unacknowledged, by a worker
until it is due. Redis gives an unacknowledged task to another worker once it is older than the
visibility timeout (CELERY_VISIBILITY_TIMEOUT), so a countdown near that would run twice, and a
worker killed while holding one delays it by a whole timeout. Hence: no countdown, retry delay or
ETA above half the timeout. Longer waits live in database timestamps that a beat sweep picks up.

Each app names its longest countdown where it is defined (`countdown_limit`); the check runs as a
Django system check (`manage.py check`, `migrate`) and when a Celery worker starts
(smsportal/celery.py), which then refuses to start.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core import checks

_LIMITS: dict[str, Callable[[], float]] = {}


def countdown_limit(name: str, seconds: float) -> float:
    """Record `seconds` as the longest countdown `name` may use, and return it (for a module constant)."""
    _LIMITS[name] = lambda: seconds
    return seconds


def countdown_limit_setting(setting: str) -> None:
    """A setting that is used as a countdown as it is (e.g. SIMULATOR_RECEIPT_DELAY)."""
    _LIMITS[f"settings.{setting}"] = lambda: float(getattr(settings, setting))


def visibility_timeout() -> float | None:
    """The broker's redelivery timeout in seconds; None for a broker without one (the filesystem one)."""
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    return None if timeout is None else float(timeout)


def countdowns_too_long() -> list[str]:
    """One line per registered countdown longer than half the visibility timeout."""
    timeout = visibility_timeout()
    if timeout is None:
        return []
    return [f"{name} = {limit():g} s is longer than half of CELERY_VISIBILITY_TIMEOUT ({timeout:g} s / 2)"
            for name, limit in sorted(_LIMITS.items()) if limit() > timeout / 2]


@checks.register()
def check_countdowns(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [checks.Error(problem, hint="Raise CELERY_VISIBILITY_TIMEOUT (default 3600) or lower the countdown.",
                         id="smsportal.E010") for problem in countdowns_too_long()]
