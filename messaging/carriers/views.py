"""Carrier callbacks: POST /carriers/{name}/receipts and /carriers/{name}/inbound.

Each carrier authenticates its callbacks its own way (Twilio's X-Twilio-Signature, Telnyx's Ed25519 signature
and timestamp, a generic partner's HMAC or token), optionally also by source address
(`callback_allowed_ips`): messaging/carriers/http/. A bad or missing signature is 403 and changes nothing.
Receipts are matched by the carrier's id only (pipeline.receipts_apply, idempotent: a repeated receipt changes
nothing); a receipt whose id is not stored yet is answered 503 `receipt_unmatched` with Retry-After, so the
carrier sends it again, for a while (messaging/carriers/unmatched.py); inbound messages go through the inbound
service (code capture, STOP, HELP).

The URL checked is the one the carrier called, as Django sees it: the scheme and host from a trusted proxy's
headers only (accounts/clientip.py, SECURE_PROXY_SSL_HEADER); it must be the PUBLIC_BASE_URL the carrier
was given.
"""
from __future__ import annotations

from numbers.inbound import inbound_receive

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from messaging import pipeline
from messaging.carriers.http import CallbackRefused, inbound_from_callback, receipts_from_callback
from messaging.carriers.unmatched import RETRY_AFTER_SECONDS, receipts_waiting
from messaging.routing.connectors import carrier_config
from messaging.routing.models import Carrier


def _refused(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _callback(request: HttpRequest, name: str, parse):
    # Enabled or not: a carrier disabled for new traffic still reports on the messages it has.
    carrier = Carrier.objects.filter(name=name, kind=Carrier.Kind.HTTP).first()
    if carrier is None:
        return None, _refused("not_found", "No such carrier.", 404)
    try:
        found = parse(carrier_config(carrier), method=request.method, url=request.build_absolute_uri(),
                      headers=dict(request.headers), body=request.body, client_ip=getattr(request, "client_ip", None))
    except CallbackRefused as refused:
        return None, _refused(refused.reason, "The callback could not be verified.", 403)
    return found, None


@csrf_exempt  # a carrier's server calls it: its signature is the check, not a browser's token
@require_POST
def carrier_receipts(request: HttpRequest, name: str) -> HttpResponse:
    receipts, refused = _callback(request, name, receipts_from_callback)
    if refused is not None:
        return refused
    found = [pipeline.Receipt(carrier_message_id=r.carrier_message_id, status=r.status,
                              carrier_error_code=r.carrier_error_code, detail=r.detail) for r in receipts]
    # Which ids are unknown is read before the matched ones are applied: an id stored in between is then
    # answered 503 and its receipt comes again (idempotent), never answered 204 unapplied.
    unmatched = pipeline.receipts_unmatched(carrier=name, receipts=found) if found else set()
    matched = [r for r in found if r.carrier_message_id not in unmatched]
    if matched:
        pipeline.receipts_apply(carrier=name, receipts=matched)
    if receipts_waiting(carrier=name, carrier_message_ids=sorted(unmatched)):
        response = _refused("receipt_unmatched", "No message has this carrier id yet; send the receipt again.", 503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def carrier_inbound(request: HttpRequest, name: str) -> HttpResponse:
    messages, refused = _callback(request, name, inbound_from_callback)
    if refused is not None:
        return refused
    for message in messages:
        inbound_receive(to=message.to, sender=message.sender, text=message.text, carrier=name,
                        carrier_message_id=message.carrier_message_id,
                        received_at=message.received_at or timezone.now())
    return HttpResponse(status=204)
