"""POST /v1/messages in its plain case, served without DRF's request machinery (issue 9, single send).

Most sends are alike: a bearer key, a JSON body that parses, no query string, no pool, and an answer
of 202. For those, `send_plain` does what MessageListView's DRF path does, with the same functions
(the key cache's authentication, the body checks of the JSON parser, message_fields_parse, the
accept pipeline, message_answer and DRF's JSON renderer), but without building a DRF Request, its
negotiation, permission, throttle and Response objects, and with the Idempotency-Key record written
completed, with the answer, by the insert's own statement: one round trip to PostgreSQL in all
(smsportal/api/idempotency.py, messaging/accept/store.py).

Everything else is handed to the DRF path, which is the reference: an unusual request (a query string,
an Accept or Content-Type other than plain JSON, a pool sender), anything refused before the pipeline
(bad key, scope, JSON), a message the pipeline refused, and a repeated Idempotency-Key (the DRF path
replays the stored answer, or answers 409 / 422). So every error answer is the DRF path's own.

Rate limits count each send once. The pipeline's one Redis decision also marks the Idempotency-Key
as seen: a repeat (a retry, or a duplicate sent at the same moment) is counted in no limit and
handed over, so duplicates never spend the rate or get a 429 meant for new sends. A request handed
over after its limits were counted (a refused message, a key found taken by the insert, a repeat) is
marked `send_limits_counted`, and the DRF path then skips step 3.
"""
from __future__ import annotations

import io
from numbers.pools import pool_name_from_sender
from typing import TYPE_CHECKING

from django.http import HttpResponse
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.renderers import JSONRenderer

from accounts.authentication import request_api_key
from accounts.roles import Scope
from messaging import accept
from messaging.api.answers import message_answer
from messaging.api.parsing import message_fields_parse
from smsportal.api import idempotency
from smsportal.api.parsers import JSONParser
from smsportal.api.throttling import ApiKeyRateThrottle
from smsportal.errors import DomainError

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import ApiKey
    from messaging.accept import Draft

# Media ranges in Accept that choose our JSON renderer, as DRF's negotiation would with it alone.
_JSON_RANGES = frozenset({"*/*", "application/*", "application/json"})
_RENDERER = JSONRenderer()
_PARSER = JSONParser()


def send_plain(request: HttpRequest, *, allow: str) -> HttpResponse | None:
    """The 202 answer to a plain single send, or None: serve the request with DRF (see the module).

    `allow` is the view's Allow header, which DRF adds to every answer."""
    if request.GET or not _plain_json(request):
        return None
    try:
        api_key = request_api_key(request)
    except DomainError:
        return None
    if api_key is None or not api_key.has_scope(Scope.MESSAGES_SEND):
        return None
    try:
        key = idempotency.idempotency_key_from(request)
    except DomainError:
        return None
    document = _document(request.body)
    if document is None:
        return None
    try:
        fields = message_fields_parse(document)
    except ValidationError:
        return None
    if pool_name_from_sender(fields["sender"]):
        return None  # the pick writes before the insert: the DRF path's transaction
    answer = _Answer()
    claim = None if key is None else idempotency.AnsweredClaim(
        tenant_id=api_key.tenant_id, mode=api_key.mode, key=key, status=202,
        fingerprint=idempotency.request_fingerprint(method="POST", route=request.resolver_match.route, kwargs={},
                                                    query={}, body=document),
        render=answer.render)
    try:
        (draft,) = accept.messages_accept(tenant=api_key.tenant, api_key=api_key, items=[fields], claim=claim,
                                          request_limits=_key_limits(request, api_key))
    except idempotency.KeyTaken:
        request.send_limits_counted = True
        return None
    except DomainError as exc:  # a request-wide refusal: 429 and 503 counted in no limit, billing's 402 after them
        if getattr(exc, "limits_counted", False):
            request.send_limits_counted = True
        return None
    if draft.error is not None or (draft.duplicate is not None and claim is not None):
        # (A deduplicated OTP stored nothing, so not its Idempotency-Key either: the DRF path records it.)
        request.send_limits_counted = True
        return None
    return HttpResponse(answer.render(draft), status=202, content_type="application/json", headers={"Allow": allow})


def _plain_json(request: HttpRequest) -> bool:
    """A JSON body in UTF-8, and an Accept (if any) that DRF would answer with plain JSON."""
    if request.content_type != "application/json" or request.content_params.get("charset", "utf-8").lower() not in (
            "utf-8", "utf8"):
        return False
    accept_header = request.META.get("HTTP_ACCEPT")
    if not accept_header:
        return True
    ranges = [part.strip() for part in accept_header.split(",")]
    return not any(";" in part for part in ranges) and any(part in _JSON_RANGES for part in ranges)


def _document(body: bytes):
    """The body as the API's JSON parser reads it (smsportal/api/parsers.py), or None for anything it refuses."""
    try:
        return _PARSER.parse(io.BytesIO(body))
    except APIException:
        return None


def _key_limits(request: HttpRequest, api_key: ApiKey):
    """The API key's request limit (API_RATE_LIMIT), decided by the pipeline with the message limits."""
    return ApiKeyRateThrottle().limits(request, api_key)


class _Answer:
    """The 202 body, rendered once: by the insert for the Idempotency-Key record, or after it."""

    body: bytes | None = None

    def render(self, draft: Draft) -> bytes:
        if self.body is None:
            self.body = _RENDERER.render(message_answer(draft))
        return self.body
