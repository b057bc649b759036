"""Schemathesis against the live server, as shipped (Procfile.dev's gunicorn), on PostgreSQL and Redis.

Every check category runs on every operation of the served /v1/openapi.json, with a seeded tenant
and an admin test key: the schema must say what the API really does (statuses, bodies, headers),
the API must refuse what the schema says is invalid and accept what it says is valid, and nothing
may answer 5xx. A bounded run (EXAMPLES test cases per operation and phase, a fixed seed) that fits
CI; the figures of the run are printed. Exclusions, each with its reason, are in EXCLUSIONS.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from numbers.tests.factories import stock
from pathlib import Path

import pytest

from accounts.tests.factories import TenantFactory, make_api_key
from billing.models import NumberPrice
from compliance.country_data import country_rules_load
from smsportal.tests.servers import procfile_server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

EXAMPLES = 20
SEED = 8
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")

# Also accepted as an answer to a schema-valid request, besides the check's defaults.
DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


def _also_accepted(path: str, method: str, *statuses: str) -> dict:
    return {"include-name": f"{method} {path}",
            "checks.positive_data_acceptance.expected-statuses": [*DEFAULT_ACCEPTED, *statuses]}


def _check_off(path: str, method: str, check: str) -> dict:
    return {"include-name": f"{method} {path}", f"checks.{check}.enabled": False}


# Exclusions, each with its reason: schemathesis.toml [[operations]] tables. Keep it short.
EXCLUSIONS: list[tuple[dict, str]] = [
    (_also_accepted("/v1/messages", "POST", "400", "422"),
     "`to` must be a real phone number (phonenumbers' rules per country), `from` a sender you may use, a "
     "template's variables must fill its placeholders, `scheduled_at` at most 30 days ahead, `metadata` at most "
     "4 KB: no JSON Schema says so. Each refusal is a 400 with its own documented code. And the policy checks "
     "refuse by state, not shape (422: a destination the tenant has not enabled, a content rule, a price): "
     "docs/compliance.md."),
    (_also_accepted("/v1/messages/quote", "POST", "400", "422"), "The same body and checks as POST /v1/messages."),
    (_also_accepted("/v1/messages/batch", "POST", "400", "422"),
     "Each message is checked as POST /v1/messages is (and `defaults` may give it any field): a batch none of "
     "whose messages passes is 400 `batch_rejected`, with each message's own code in `results`."),
    (_also_accepted("/v1/api-keys", "POST", "400"), "`expires_at` must be in the future (400 `invalid_expiry`)."),
    (_also_accepted("/v1/ip-allowlist", "POST", "400"),
     "A valid IPv4/IPv6 network is no JSON Schema pattern (400 `invalid_cidr`), and `api_key` must be one of "
     "your keys (400 `api_key_not_found`)."),
    (_also_accepted("/v1/webhook-endpoints", "POST", "400"),
     "A URL that may receive webhooks (http(s), no credentials or fragment, an allowed port) is no JSON Schema "
     "pattern (400 `invalid_callback_url`)."),
    (_also_accepted("/v1/webhook-endpoints/{endpoint_id}", "PATCH", "400"), "As POST /v1/webhook-endpoints."),
    (_also_accepted("/v1/numbers/leases", "POST", "400"), "`callback_url`: as POST /v1/webhook-endpoints."),
    (_also_accepted("/v1/numbers/leases/{lease_id}/extend", "POST", "400"),
     "The new end must be at most 30 days from now (400 `invalid_ttl`): relative to the lease and the clock."),
    (_also_accepted("/v1/number-pools", "POST", "400", "422"),
     "`numbers` must be numbers you hold (422 `number_not_held`): state, not schema; and a whole number beyond "
     "64 bits under a key the schema does not name is 400 `number_out_of_range` (the parser's rule for every "
     "body, docs/hostile-input.md), which OpenAPI 3.0 cannot say of undeclared keys."),
    (_also_accepted("/v1/number-pools/{pool_id}", "PATCH", "400", "422"),
     "As POST /v1/number-pools."),
    (_also_accepted("/v1/pricing", "GET", "400"),
     "`country` must be an ISO 3166 alpha-2 code we know (400 `invalid_country`): a list, not a pattern."),
    (_also_accepted("/v1/usage", "GET", "400"),
     "`from` and `to` at most 366 days apart and in order (400 `range_too_long`, `invalid_range`): a relation "
     "between two parameters, which no JSON Schema says."),
    (_also_accepted("/v1/billing/savings", "POST", "400", "422"),
     "The keys of `volumes` must be ISO 3166 alpha-2 codes we know (422 `invalid_country`): a list, and OpenAPI "
     "3.0 has no propertyNames to say it of an object's keys; and a whole number beyond 64 bits under a key the "
     "schema does not name is 400 `number_out_of_range`, as for POST /v1/number-pools."),
    (_also_accepted("/v1/consents", "POST", "400"),
     "`phone` (and `sender`) must be real phone numbers (phonenumbers' rules per country, 400 `invalid_consent`), "
     "`ip` an IPv4 or IPv6 address, and a scope names its sender or pool: rules no JSON Schema pattern says."),
    (_also_accepted("/v1/suppressions", "POST", "400"), "As POST /v1/consents."),
    (_also_accepted("/v1/erasure-requests", "POST", "400"), "`phone`: as POST /v1/consents."),
    (_also_accepted("/v1/sender-ids", "POST", "400"),
     "`countries` must be ISO 3166 alpha-2 codes we know (400 `invalid_country`), a list and not a pattern, and "
     "`value` at least one letter, or a number you hold (400 `invalid_sender_id`): state and rules no JSON "
     "Schema pattern says."),
    (_also_accepted("/v1/sender-ids/{sender_id}/documents", "POST", "400"),
     "A document must be a PDF, PNG or JPEG by its first bytes (400 `invalid_document`): content, not schema."),
    (_check_off("/v1/api-keys/{api_key_id}", "GET", "use_after_free"),
     "DELETE revokes a key; a revoked key stays readable (`status: revoked`) for the audit trail."),
    (_check_off("/v1/numbers/leases/{lease_id}", "GET", "use_after_free"),
     "DELETE ends a lease early; an ended lease stays readable (`status: released`), like an expired one."),
]
# One worker: two crash CPython 3.11 now and then ("SystemError: AST constructor recursion depth
# mismatch" from hypothesis' ast.parse on two threads at once).
# Run-wide, with its reason: no NUL bytes in generated strings. Every input refuses them with 400
# `null_characters_not_allowed` (PostgreSQL cannot store them; docs/hostile-input.md), which
# test_hostile_input.py proves for every field, object key, query value and id. OpenAPI 3.0 cannot
# say "any string but NUL" for the keys of free-form objects (metadata, variables: no propertyNames),
# so with NULs the positive-data check would report those correct 400s as valid requests rejected.
# Any UTC offset is generated (the date filters answer 400 where PostgreSQL would refuse one).
GENERATION = ["--generation-allow-x00", "false"]
# Every answer within this many seconds. A generous bound, not a speed figure (bench/ has those): on
# a loaded 2-core box an accept can wait seconds for the CPU, and a timeout is not what this run is about.
MAX_RESPONSE_SECONDS = "30"


def _config(tmp_path: Path) -> Path:
    # The key goes to the schema's security scheme, not to every request: the checks that drop or
    # spoil authentication (ignored_auth, missing_required_header) must be able to send none.
    lines = ["[auth.openapi.ApiKey]", 'bearer = "${SCHEMATHESIS_TOKEN}"', ""]
    for table, _reason in EXCLUSIONS:
        lines.append("[[operations]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path = tmp_path / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _figures(report: dict) -> str:
    failures = ", ".join(f"{f['code']} {f['title']}: {f['count']}" for f in report["failures"]) or "none"
    return (f"operations {report['operations']['tested']}/{report['operations']['total']}, "
            f"test cases {report['test_cases']['generated']}, "
            f"failures {report['test_cases']['unique_failures']} ({failures}), "
            f"errors {len(report['errors'])}, {report['running_time']:.0f} s")


@pytest.fixture
def seeded():
    tenant = TenantFactory(messages_per_second=1000)
    own, secret = make_api_key(tenant, scopes=["admin"], name="schemathesis")
    spare, _ = make_api_key(tenant, scopes=["messages:read"], name="spare")
    stock(40, country="US")
    stock(10, country="GB")
    country_rules_load()  # loaded by the migration, but an earlier transactional test may have flushed them
    # a number price, so the numbers answers show a `price` object as well as null (GB has none)
    NumberPrice.unscoped.create(number_type="mobile", country="US", monthly_rental=Decimal("1.15"),
                                lease_per_hour=Decimal("0.05"), currency="EUR", effective_from=date(2025, 1, 1))
    return own, spare, secret


def test_the_api_conforms_to_its_schema(seeded, tmp_path):
    own, spare, secret = seeded
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "SCHEMATHESIS_TOKEN": secret,
           "SCHEMATHESIS_OWN_KEY_ID": own.public_id, "SCHEMATHESIS_SPARE_KEY_ID": spare.public_id}
    report_path = tmp_path / "report.json"
    with procfile_server(env={"API_RATE_LIMIT": "100000/s"}, log=tmp_path / "web.log") as server:
        base_url = server.url("")
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(_config(tmp_path)), "run",
             f"{base_url}/v1/openapi.json", "--checks", "all",
             "--max-examples", str(EXAMPLES), "--max-response-time", MAX_RESPONSE_SECONDS, "--seed", str(SEED), "--workers", "1", "--generation-database", "none",
             *GENERATION, "--request-timeout", "20", "--report", "json", "--report-json-path", str(report_path), "--no-color"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    report = json.loads(report_path.read_text())
    print("schemathesis:", _figures(report), "- output:", tmp_path / "schemathesis.txt")
    assert run.returncode == 0, f"{_figures(report)}\n{run.stdout[-20000:]}\n{run.stderr[-3000:]}"
