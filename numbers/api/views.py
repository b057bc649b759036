"""/v1 views for numbers: the available inventory, assignments and leases (scope `numbers`)."""
from numbers import hooks, inbound, pools, selectors, services
from numbers.api import serializers as s
from numbers.errors import (
    InvalidCallbackUrl,
    InvalidExpiringNotice,
    InvalidPoolName,
    InvalidTtl,
    LeaseEnded,
    NoNumberAvailable,
    NumberNotAvailable,
    NumberNotHeld,
    NumberNotSmsCapable,
    PoolNameTaken,
    TestModeOnly,
)
from numbers.models import InboundMessage, NumberAssignment, NumberPool, PhoneNumber

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from accounts.roles import Scope
from accounts.services import ApiKeyMode
from accounts.services.audit import Actor
from smsportal.api.pagination import CursorPagination
from smsportal.api.schema import Code, api_errors
from smsportal.api.views import ApiListView, ApiView


class ByNumberPagination(CursorPagination):
    ordering = ("number",)


class AvailablePagination(ByNumberPagination):
    page_size = 50
    max_page_size = 50


class ByReceivedPagination(CursorPagination):
    ordering = ("-received_at", "-id")


def _actor(request) -> Actor:
    return Actor(api_key=request.auth)


def _priced(request) -> dict:
    """The serializer context of an answer that shows number prices: the tenant's, read once."""
    return {"number_prices": hooks.number_prices(tenant=request.auth.tenant)}


class PricedListMixin:
    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False) and getattr(self.request, "auth", None) is not None:
            context.update(_priced(self.request))
        return context


POOL_ERRORS = (InvalidPoolName, PoolNameTaken, NumberNotHeld, NumberNotSmsCapable)


class AvailableNumberListView(PricedListMixin, ApiListView):
    """Available numbers matching the filters, by number; at most 50 a page (`limit`)."""

    required_scope = Scope.NUMBERS
    serializer_class = s.AvailableNumberSerializer
    pagination_class = AvailablePagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PhoneNumber.objects.none()
        query = s.NumberFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return services.numbers_available(**query.validated_data)

    @extend_schema(summary="Search available numbers",
                   description="Numbers free to rent (POST /v1/numbers) or lease, by number, with their "
                               "`price` (monthly rental and lease per hour, in your currency): filter by country, "
                               "type, capability and digits the number contains. At most 50 a page. Needs the "
                               "`numbers` scope.",
                   parameters=[s.NumberFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@extend_schema_view(get=extend_schema(
    summary="List your numbers",
    description="The numbers your account holds, by number: rented ones (`holding` `assignment`) and leased "
                "ones (`lease`, with `expires_at`). Needs the `numbers` scope."))
class NumberListView(PricedListMixin, ApiListView):
    """The numbers the tenant holds (GET), or rent one (POST): a given number or any matching the filters."""

    required_scope = Scope.NUMBERS
    serializer_class = s.HeldNumberSerializer
    pagination_class = ByNumberPagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PhoneNumber.objects.none()
        return selectors.numbers_held(tenant=self.request.auth.tenant)

    @extend_schema(
        summary="Rent a number",
        description="Rent a given available number (`number`), or any available one matching the filters "
                    "(`country`, `type`, `capability`, `contains`), until you release it. 409 when none is free. "
                    "Needs the `numbers` scope.",
        request=s.NumberAssignSerializer,
        responses={201: s.AssignmentSerializer, **api_errors(
            Code(400, "number_and_filters", "Both a number and filters were given (field `number`)."),
            Code(400, "number_or_filters_required", "Give a number, or at least country, type or contains."),
            NumberNotAvailable, NoNumberAvailable)},
        examples=[OpenApiExample("Any US mobile number", request_only=True,
                                 value={"country": "US", "type": "mobile", "capability": "sms"})])
    def post(self, request):
        data = s.NumberAssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        given = fields.pop("number", None)
        number = None
        if given is not None:
            number = PhoneNumber.objects.filter(number=given).first()
            if number is None:
                raise NumberNotAvailable(field="number")
            fields = {}
        assignment: NumberAssignment = services.number_assign(tenant=request.auth.tenant, number=number,
                                                              actor=_actor(request), **fields)
        return Response(s.AssignmentSerializer(assignment, context=_priced(request)).data,
                        status=status.HTTP_201_CREATED)


class NumberDetailView(ApiView):
    """Release a number the tenant holds (its assignment, or its lease)."""

    required_scope = Scope.NUMBERS
    serializer_class = s.HeldNumberSerializer

    @extend_schema(summary="Release a number",
                   description="Give back a number you hold, rented or leased: it stops receiving messages for "
                               "you at once and leaves its pools. Needs the `numbers` scope.",
                   responses={204: None})
    def delete(self, request, number_id):
        holding = selectors.holding_get(tenant=request.auth.tenant, number_public_id=number_id)
        if isinstance(holding, NumberAssignment):
            services.number_release_assignment(tenant=request.auth.tenant, assignment=holding, actor=_actor(request))
        else:
            services.number_lease_release(tenant=request.auth.tenant, lease=holding, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeaseCreateView(ApiView):
    """Lease an available number of a country for `ttl_seconds`."""

    required_scope = Scope.NUMBERS
    serializer_class = s.LeaseSerializer

    @extend_schema(
        summary="Lease a number",
        description="Lease an available number of a country for `ttl_seconds` (1 minute to 30 days), to receive "
                    "verification codes: read them with GET /v1/numbers/leases/{id}/messages or get them at "
                    "`callback_url`. The lease ends by itself; `number.lease_expiring` is sent "
                    "`expiring_notice_seconds` before. Needs the `numbers` scope.",
        request=s.LeaseCreateSerializer,
        responses={201: s.LeaseSerializer, **api_errors(InvalidTtl, InvalidExpiringNotice, InvalidCallbackUrl,
                                                        NoNumberAvailable)},
        examples=[OpenApiExample("A US number for 15 minutes", request_only=True,
                                 value={"country": "US", "ttl_seconds": 900, "type": "mobile"})])
    def post(self, request):
        data = s.LeaseCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lease = services.number_lease_acquire(tenant=request.auth.tenant, actor=_actor(request), **data.validated_data)
        return Response(s.LeaseSerializer(lease, context=_priced(request)).data, status=status.HTTP_201_CREATED)


class LeaseDetailView(ApiView):
    """One lease (GET), or end it early (DELETE; ending an ended lease changes nothing)."""

    required_scope = Scope.NUMBERS
    serializer_class = s.LeaseSerializer

    @extend_schema(summary="Show a lease", description="One lease, running or ended (`status` active, expired "
                   "or released). Needs the `numbers` scope.")
    def get(self, request, lease_id):
        return Response(s.LeaseSerializer(selectors.lease_get(tenant=request.auth.tenant, public_id=lease_id),
                                     context=_priced(request)).data)

    @extend_schema(summary="End a lease", responses={200: s.LeaseSerializer},
                   description="End the lease now instead of at `expires_at`; the answer is the ended lease. "
                               "Ending an ended lease changes nothing. Needs the `numbers` scope.")
    def delete(self, request, lease_id):
        lease = selectors.lease_get(tenant=request.auth.tenant, public_id=lease_id)
        services.number_lease_release(tenant=request.auth.tenant, lease=lease, actor=_actor(request))
        return Response(s.LeaseSerializer(lease, context=_priced(request)).data)


class LeaseExtendView(ApiView):
    """Move a running lease's end `ttl_seconds` later."""

    required_scope = Scope.NUMBERS
    serializer_class = s.LeaseSerializer

    @extend_schema(
        summary="Extend a lease",
        description="Move a running lease's end `ttl_seconds` later, up to 30 days from now. An ended lease "
                    "gets 409 `lease_ended`. Needs the `numbers` scope.",
        request=s.LeaseExtendSerializer,
        responses={200: s.LeaseSerializer, **api_errors(
            InvalidTtl, LeaseEnded, Code(409, "lease_busy", "The lease changed at the same time; try again."))},
        examples=[OpenApiExample("Ten more minutes", request_only=True, value={"ttl_seconds": 600})])
    def post(self, request, lease_id):
        # Found first: another tenant's lease is a 404 whatever the body.
        lease = selectors.lease_get(tenant=request.auth.tenant, public_id=lease_id)
        data = s.LeaseExtendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lease = services.number_lease_extend(tenant=request.auth.tenant, lease=lease, actor=_actor(request),
                                             **data.validated_data)
        return Response(s.LeaseSerializer(lease, context=_priced(request)).data)



# --- Inbound messages -----------------------------------------------------------------------------


class InboundMessageListView(ApiListView):
    """The tenant's inbound messages, newest first; filters to, from, lease, has_code, received_after/before."""

    required_scope = Scope.NUMBERS
    serializer_class = s.InboundMessageSerializer
    pagination_class = ByReceivedPagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return InboundMessage.objects.none()
        query = s.InboundFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.inbound_messages(tenant=self.request.auth.tenant, **query.validated_data)

    @extend_schema(summary="List inbound messages",
                   description="SMS received by your numbers, newest first, with the verification `code` and "
                               "`service` captured from the text. Filter by recipient, sender, lease, whether a "
                               "code was found and arrival time. Needs the `numbers` scope.",
                   parameters=[s.InboundFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InboundMessageDetailView(ApiView):
    """One inbound message of the tenant."""

    required_scope = Scope.NUMBERS
    serializer_class = s.InboundMessageSerializer

    @extend_schema(summary="Show an inbound message", description="One SMS received by one of your numbers. "
                   "Needs the `numbers` scope.")
    def get(self, request, inbound_id):
        message = selectors.inbound_message_get(tenant=request.auth.tenant, public_id=inbound_id)
        return Response(s.InboundMessageSerializer(message).data)


class LeaseMessagesView(ApiView):
    """The lease's inbound messages, oldest first; with `wait` (max 30 s) and none yet, waits for the first.

    Routed through numbers/api/longpoll.py, which does the waiting without a thread or a database
    connection: this view only answers at once, or leaves `request.lease_wait` for the wait."""

    required_scope = Scope.NUMBERS
    serializer_class = s.InboundMessageSerializer
    queryset = InboundMessage.objects.none()
    # A plain array, not a page: a lease gets a handful of messages, and a long-poll answers them all.
    pagination_class = None

    @extend_schema(summary="Wait for a lease's messages",
                   description="Every SMS the lease has received, oldest first, as an array. With `wait` (up to "
                               "30 seconds) and none received yet, the answer waits until the first arrives or "
                               "`wait` runs out (then `[]`). A lease that has ended answers at once. For long "
                               "histories, page through GET /v1/inbound-messages?lease={id}. Needs the `numbers` "
                               "scope.",
                   parameters=[s.LeaseMessagesQuerySerializer,
                               OpenApiParameter("lease_id", str, OpenApiParameter.PATH)],
                   responses={200: s.InboundMessageSerializer(many=True)})
    def get(self, request, lease_id):
        query = s.LeaseMessagesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        lease = selectors.lease_get(tenant=request.auth.tenant, public_id=lease_id)
        messages = selectors.lease_messages(tenant_id=lease.tenant_id, lease_id=lease.pk)
        wait = query.validated_data["wait"]
        # A lease that has ended receives nothing more: no point waiting.
        if not messages and wait and lease.status == "active":
            if not getattr(request._request, "lease_wait_async", False):
                raise RuntimeError("the long-poll must be routed through numbers.api.longpoll")
            request._request.lease_wait = (lease.tenant_id, lease.pk, wait)
        return Response(s.InboundMessageSerializer(messages, many=True).data)


class SimulatorInboundView(ApiView):
    """Carrier simulator: inject an inbound SMS to one of your numbers (test-mode keys only)."""

    required_scope = Scope.NUMBERS
    serializer_class = s.InboundMessageSerializer

    @extend_schema(
        summary="Simulate an inbound SMS",
        description="Test-mode keys only: deliver an SMS to a number you hold as if a carrier had, to try codes, "
                    "webhooks and keywords (STOP, HELP). Needs the `numbers` scope.",
        request=s.SimulatorInboundSerializer,
        responses={201: s.InboundMessageSerializer, **api_errors(
            TestModeOnly, Code(404, "not_found", "`to` is not a number you hold (field `to`)."))},
        examples=[OpenApiExample("A verification code", request_only=True, value={
            "to": "+14155550100", "from": "+447700900001", "text": "G-482913 is your Google verification code."})])
    def post(self, request):
        if request.auth.mode != ApiKeyMode.TEST:
            raise TestModeOnly()
        data = s.SimulatorInboundSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        number = selectors.number_held_get(tenant=request.auth.tenant, number=fields["to"])
        message = inbound.inbound_receive(to=number.number, sender=fields["from"], text=fields["text"],
                                          carrier="simulator",
                                          carrier_message_id=fields.get("carrier_message_id") or "",
                                          received_at=timezone.now())
        return Response(s.InboundMessageSerializer(message).data, status=status.HTTP_201_CREATED)


# --- Number pools ---------------------------------------------------------------------------------


class ByNamePagination(CursorPagination):
    # The name is unique within the tenant, so it alone orders a stable cursor.
    ordering = ("name",)


@extend_schema_view(get=extend_schema(
    summary="List number pools",
    description="Your number pools by name, each with the numbers in it you still hold. Needs the `numbers` scope."))
class PoolListView(ApiListView):
    """The tenant's number pools by name (GET), or create one (POST). Send from one with `"from": "pool:NAME"`."""

    required_scope = Scope.NUMBERS
    serializer_class = s.PoolSerializer
    pagination_class = ByNamePagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return NumberPool.objects.none()
        return selectors.pool_list(tenant=self.request.auth.tenant)

    @extend_schema(
        summary="Create a number pool",
        description='A named set of numbers you hold, to send from with `"from": "pool:NAME"`: each message '
                    "goes from the number the recipient got last time (`sticky_sender`), else one of the "
                    "recipient's country (`geo_match`), else the next in turn. Needs the `numbers` scope.",
        request=s.PoolWriteSerializer, responses={201: s.PoolSerializer, **api_errors(*POOL_ERRORS)},
        examples=[OpenApiExample("An empty pool", request_only=True, value={
            "name": "alerts", "description": "Alerts to customers", "sticky_sender": True, "geo_match": True})])
    def post(self, request):
        data = s.PoolWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pool = pools.pool_create(tenant=request.auth.tenant, actor=_actor(request), **data.validated_data)
        pool = selectors.pool_get(tenant=request.auth.tenant, public_id=pool.public_id)
        return Response(s.PoolSerializer(pool).data, status=status.HTTP_201_CREATED)


class PoolDetailView(ApiView):
    """One number pool (GET), change it (PATCH: settings, and `numbers` to replace the members or
    `add_numbers` / `remove_numbers`), or delete it (DELETE; messages sent from it keep their number)."""

    required_scope = Scope.NUMBERS
    serializer_class = s.PoolSerializer

    @extend_schema(summary="Show a number pool", description="One number pool with its numbers. Needs the "
                   "`numbers` scope.")
    def get(self, request, pool_id):
        return Response(s.PoolSerializer(selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)).data)

    @extend_schema(
        summary="Change a number pool",
        description="Change the name, description or flags; `numbers` replaces the members, `add_numbers` and "
                    "`remove_numbers` change some. Fields left out stay as they are. Needs the `numbers` scope.",
        request=s.PoolUpdateSerializer, responses={200: s.PoolSerializer, **api_errors(*POOL_ERRORS)},
        examples=[OpenApiExample("Stop sticking", request_only=True, value={"sticky_sender": False})])
    def patch(self, request, pool_id):
        # Found first: another tenant's pool is a 404 whatever the body.
        pool = selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)
        data = s.PoolUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        pools.pool_update(tenant=request.auth.tenant, pool=pool, actor=_actor(request), **data.validated_data)
        return Response(s.PoolSerializer(selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)).data)

    @extend_schema(summary="Delete a number pool", responses={204: None},
                   description="Delete the pool; its numbers stay yours, and messages sent from it keep their "
                               "number. Needs the `numbers` scope.")
    def delete(self, request, pool_id):
        pool = selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)
        pools.pool_delete(tenant=request.auth.tenant, pool=pool, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
