"""Our `numbers` app shadows the standard library's `numbers`; the shim keeps both working."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import decimal, fractions, json, numbers
import numbers.apps
# numbers.models holds real models now: they need the app registry, as any app's models do.
import os, django; os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.test_settings"); django.setup()
import numbers.models
assert numbers.__file__.endswith("numbers/__init__.py"), numbers.__file__
assert isinstance(decimal.Decimal(1), numbers.Number)
assert issubclass(int, numbers.Integral) and issubclass(float, numbers.Real)
assert isinstance(fractions.Fraction(1, 3), numbers.Rational)
assert json.loads("1.5") == 1.5
print("ok")
"""


def test_it_exposes_the_standard_abstract_number_classes():
    import decimal
    import fractions
    import numbers

    assert isinstance(decimal.Decimal(1), numbers.Number)
    assert issubclass(int, numbers.Integral)
    assert isinstance(fractions.Fraction(1, 2), numbers.Rational)
    assert numbers.Complex.register  # the real ABCs, not look-alikes
    assert numbers.Number.__module__ == "numbers"


def test_it_is_also_the_django_app():
    # In this process pytest imported the standard `numbers` first; smsportal/__init__.py makes it our package too.
    import numbers.apps
    import numbers.models

    from django.apps import apps

    assert Path(numbers.apps.__file__).parent == REPO_ROOT / "numbers"
    assert Path(numbers.models.__file__).parent == REPO_ROOT / "numbers"
    assert Path(apps.get_app_config("numbers").path) == REPO_ROOT / "numbers"


def test_it_works_in_a_fresh_interpreter_started_from_the_repo_root():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_it_keeps_the_app_importable_when_the_standard_module_came_first(tmp_path):
    # As under `celery -A smsportal` or pytest: decimal (and the standard numbers) load before our code.
    probe = f"import decimal, sys; sys.path.append({str(REPO_ROOT)!r}); import smsportal\n" + PROBE.replace(
        'assert numbers.__file__.endswith("numbers/__init__.py"), numbers.__file__', "")

    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False, env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "smsportal.test_settings"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_it_lets_django_start_in_a_fresh_interpreter():
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, check=False,
                            env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "smsportal.test_settings"})

    assert result.returncode == 0, result.stderr
