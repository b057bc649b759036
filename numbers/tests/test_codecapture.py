"""Verification-code capture against a fixture of real-world OTP message formats in many languages."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbers.codecapture import Capture, capture

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "verification_messages.json").read_text(encoding="utf-8"))
SEED = json.loads((Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_inbound_examples.json").read_text(encoding="utf-8")) if False else None
CODE_SHAPE = re.compile(r"[0-9A-Za-z]{4,8}")


def _outcome(entry: dict) -> tuple[str | None, str | None]:
    result = capture(entry["text"])
    return (result.code, result.service) if result else (None, None)


@pytest.mark.parametrize("entry", FIXTURE, ids=[f"{i:03d}-{e['language']}" for i, e in enumerate(FIXTURE)])
def test_it_captures_the_fixture_message(entry):
    # given a real-world message format, when it is captured
    code, service = _outcome(entry)

    # then the code and the service are the expected ones
    assert (code, service) == (entry["code"], entry["service"]), entry["text"]
