"""Schemathesis hooks of the live-server run (smsportal/tests/test_schemathesis.py).

They change only what would break the run itself, never what a request means to the API:
- the run's own API key stays usable: revoking it, or an IP allowlist entry that applies to it
  and leaves out 127.0.0.1, would turn every later request into a 401 or 403. Both operations are
  still tested, on the run's spare key instead;
- a well-formed Idempotency-Key is made unique per request, as its contract asks of clients:
  schemathesis draws few distinct values, and the same key on another request is rightly a 422;
- the lease long-poll waits at most 1 s, to fit the run in CI's budget (numbers/tests/
  test_longpoll_asgi.py covers the waiting);
- a made-up `cursor` is left out of the cases the schema calls valid: a cursor is an opaque token
  that only a list's `next`/`previous` gives out, and any other is rightly a 400 `invalid_cursor`
  (smsportal/tests/test_pagination.py);
- likewise a whole number beyond 64 bits anywhere in a body the schema calls valid: every body refuses it with
  400 `number_out_of_range` (the parser's rule, docs/hostile-input.md), which OpenAPI 3.0 cannot say of the
  keys it does not name (free-form objects, additional properties); the key holding it is left out.
"""
from __future__ import annotations

import os
import re
import uuid

import schemathesis

OWN_KEY_ID = os.environ["SCHEMATHESIS_OWN_KEY_ID"]
SPARE_KEY_ID = os.environ["SCHEMATHESIS_SPARE_KEY_ID"]
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # as smsportal/api/idempotency.py accepts
MAX_WAIT = 1
INT64 = 2 ** 63


def _huge(value) -> bool:
    """Whether a JSON value holds a whole number outside the signed 64-bit range."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -INT64 <= value < INT64
    if isinstance(value, dict):
        return any(_huge(item) for item in value.values())
    if isinstance(value, list):
        return any(_huge(item) for item in value)
    return False


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    path, method = case.operation.path, case.method.upper()
    if method == "DELETE" and path.endswith("/api-keys/{api_key_id}"):
        if case.path_parameters.get("api_key_id") == OWN_KEY_ID:
            case.path_parameters["api_key_id"] = SPARE_KEY_ID
    if method == "POST" and path.endswith("/ip-allowlist") and isinstance(case.body, dict):
        if case.body.get("api_key", OWN_KEY_ID) in (OWN_KEY_ID, None):
            case.body["api_key"] = SPARE_KEY_ID
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    if path.endswith("/messages") and "{lease_id}" in path and isinstance(case.query, dict):
        wait = case.query.get("wait")
        if isinstance(wait, (int, str)) and not isinstance(wait, bool) and str(wait).isdigit():
            case.query["wait"] = min(int(wait), MAX_WAIT)
    if isinstance(case.query, dict) and "cursor" in case.query and case.meta and case.meta.generation.mode.is_positive:
        del case.query["cursor"]
    if isinstance(case.body, dict) and case.meta and case.meta.generation.mode.is_positive:
        for name in [name for name, value in case.body.items() if _huge(value)]:
            del case.body[name]
