"""No Celery countdown may outlive half the broker's visibility timeout (smsportal/countdowns.py):
the Django system check and a Celery worker's start refuse a configuration where one could."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from smsportal import countdowns

REPO = Path(__file__).resolve().parents[2]
# A broker with a visibility timeout (Redis); no connection is made by the check.
REDIS_BROKER = "redis://127.0.0.1:6379/9"


def _env(visibility: int) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "smsportal.test_settings", "READ_DOT_ENV": "false",
            "CELERY_BROKER_URL": REDIS_BROKER, "CELERY_VISIBILITY_TIMEOUT": str(visibility)}


def _with_visibility(settings, seconds: int) -> None:
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                                                "visibility_timeout": seconds}


def test_every_countdown_in_the_code_is_named_and_fits_the_default_timeout(settings):
    # given the default visibility timeout (one hour)
    _with_visibility(settings, 3600)
    # then the check knows the dispatch retry, the webhook retry, the lease notice and the simulator's receipt
    assert {"messaging.pipeline.MAX_COUNTDOWN_SECONDS", "smsportal.events.delivery.MAX_COUNTDOWN_SECONDS",
            "numbers.services.NOTICE_COUNTDOWN_MAX", "settings.SIMULATOR_RECEIPT_DELAY"} <= set(countdowns._LIMITS)
    # and finds nothing wrong
    assert countdowns.check_countdowns() == []


def test_a_short_visibility_timeout_fails_the_system_check_naming_each_countdown(settings):
    # given a visibility timeout of one minute: countdowns must be at most 30 s
    _with_visibility(settings, 60)
    # then the check names each longer one (the webhook retry's 60 s, the lease notice's 600 s), not the others
    errors = countdowns.check_countdowns()
    assert {error.id for error in errors} == {"smsportal.E010"}
    assert sorted(error.msg.split(" = ")[0] for error in errors) == [
        "numbers.services.NOTICE_COUNTDOWN_MAX", "smsportal.events.delivery.MAX_COUNTDOWN_SECONDS"]
    # and a setting used as a countdown counts too
    settings.SIMULATOR_RECEIPT_DELAY = 31.0
    assert "settings.SIMULATOR_RECEIPT_DELAY" in " ".join(error.msg for error in countdowns.check_countdowns())


def test_a_broker_without_a_visibility_timeout_is_not_checked(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": "/tmp"}  # the filesystem broker
    assert countdowns.check_countdowns() == []


def test_manage_py_check_fails_loudly_with_a_one_minute_visibility_timeout():
    failed = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=_env(60), capture_output=True,
                            text=True, timeout=120)
    assert failed.returncode != 0
    assert "smsportal.E010" in failed.stderr and "NOTICE_COUNTDOWN_MAX = 600 s" in failed.stderr
    passed = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=_env(3600), capture_output=True,
                            text=True, timeout=120)
    assert passed.returncode == 0, passed.stderr


def test_a_celery_worker_refuses_to_start_with_a_one_minute_visibility_timeout():
    # when a worker starts (as Procfile.dev starts it) with a visibility timeout of 60 s
    command = [sys.executable, "-m", "celery", "-A", "smsportal", "worker", "--loglevel", "INFO", "--concurrency", "1",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", "reliab-countdown-check"]
    worker = subprocess.Popen(command, cwd=REPO, env=_env(60), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, 9)
            worker.wait(timeout=10)
    # then it exits at once, saying why
    assert worker.returncode != 0
    assert "refusing to start" in output and "MAX_COUNTDOWN_SECONDS = 60 s" in output
