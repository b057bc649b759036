"""Base classes of every /v1 view: idempotent POSTs (smsportal/api/idempotency.py).

Every /v1 view inherits `ApiView` (or `ApiListView`); smsportal/tests/test_api_views.py walks the
URL configuration and fails on one that does not.

- A POST with `Idempotency-Key` runs at most once per (tenant, api-key mode, key); retries get the
  stored answer with `Idempotent-Replayed: true`.
- A view whose answer holds a secret names the fields in `idempotency_redact_fields`: they are
  stored as null, so a replay shows `null` where the first answer showed the secret.
- Rate limits are DRF throttles, one per view (smsportal/api/throttling.py, e.g.
  `throttle_classes = [MessageSendRateThrottle]`). They run before the idempotency claim, so a 429 is never stored.
- The schema of their operations (error responses, Idempotency-Key) is smsportal/api/schema.py.
"""
from __future__ import annotations

from django.db import transaction
from rest_framework import mixins
from rest_framework.generics import GenericAPIView

from accounts.models import ApiKey
from smsportal.api import idempotency as idem


class ApiView(GenericAPIView):
    """GenericAPIView with idempotent POSTs."""

    # Top-level fields of the JSON answer stored as null for replays (e.g. a once-shown secret).
    idempotency_redact_fields: tuple[str, ...] = ()

    def dispatch(self, request, *args, **kwargs):
        # APIView.dispatch (DRF 3.16), except that a POST with Idempotency-Key runs through
        # _respond_idempotently, which must own the transaction around the handler.
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            self.initial(request, *args, **kwargs)  # authentication, permissions, throttles
            handler = self._handler_for(request)
            key = self._idempotency_key(request, handler)
            if key is not None:
                self.response = self._respond_idempotently(request, handler, key, *args, **kwargs)
                return self.response
            response = handler(request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def _handler_for(self, request):
        if request.method.lower() in self.http_method_names:
            return getattr(self, request.method.lower(), self.http_method_not_allowed)
        return self.http_method_not_allowed

    def _idempotency_key(self, request, handler) -> str | None:
        # Only a tenant's key gives a scope; a POST the view does not handle is a plain 405.
        if request.method != "POST" or handler == self.http_method_not_allowed:
            return None
        if not isinstance(request.auth, ApiKey):
            return None
        return idem.idempotency_key_from(request)

    def _respond_idempotently(self, request, handler, key: str, *args, **kwargs):
        """Claim the key (or replay), run the handler and store its answer, all in one transaction.

        Durable: the side effects, the claim and the stored answer commit together or not at all. The
        claim is not committed on its own: a concurrent duplicate's INSERT waits on the unique index
        until this commits, then replays the stored answer (or, after a rollback, runs itself). A 5xx
        or 429 rolls back, claim included, so a retry runs afresh (docs/idempotency.md)."""
        fingerprint = idem.fingerprint_of(request)
        with transaction.atomic(durable=True):
            claim = idem.idempotency_claim(api_key=request.auth, key=key, fingerprint=fingerprint)
            if not isinstance(claim, idem.Claim):
                return self.finalize_response(request, claim, *args, **kwargs)
            response = self._rendered_response(request, handler, *args, **kwargs)
            if idem.storable(response):
                if not idem.idempotency_complete(claim=claim, response=response,
                                                 redact=self.idempotency_redact_fields):
                    raise idem.IdempotencyKeyInUse()  # our stale claim was taken over: undo our work
                return response
            transaction.set_rollback(True)  # a 5xx (or 429) keeps nothing: not its writes, not the key
        return response

    def _rendered_response(self, request, handler, *args, **kwargs):
        try:
            response = handler(request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        response = self.finalize_response(request, response, *args, **kwargs)
        if hasattr(response, "render"):
            response.render()  # DRF renders lazily; the stored bytes must be the ones sent
        return response


class ApiListView(mixins.ListModelMixin, ApiView):
    """ListAPIView on ApiView: GET lists `get_queryset()`, paginated."""

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

