"""smsportal: multi-tenant SMS aggregation platform."""
from pathlib import Path


def _numbers_app_importable() -> None:
    """Keep `numbers.apps`, `numbers.models` etc. importable whichever `numbers` got imported first.

    Our `numbers` app shadows the standard library's `numbers` (numbers/__init__.py
    runs the standard module's code). Entry points whose script directory is not
    the repository (pytest, `celery -A smsportal`, the `django-admin` script)
    import decimal/fractions, and with them the standard `numbers`, before our
    code runs; then that module is the one in sys.modules and Django would load
    the app from the standard library directory, without its models. Giving the
    standard module our package path makes it the same namespace the shim builds.
    """
    import numbers

    if not hasattr(numbers, "__path__"):
        numbers.__path__ = [str(Path(__file__).resolve().parent.parent / "numbers")]


_numbers_app_importable()

from smsportal.celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
