"""/v1 views for numbers: the available inventory, assignments and leases (scope `numbers`)."""
from numbers import inbound, pools, selectors, services
from numbers.api import serializers as s
from numbers.errors import NumberNotAvailable, TestModeOnly
from numbers.models import InboundMessage, NumberAssignment, NumberPool, PhoneNumber

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.roles import Scope
from accounts.services import ApiKeyMode
from accounts.services.audit import Actor
from smsportal.api.pagination import CursorPagination
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


class AvailableNumberListView(ApiListView):
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

    @extend_schema(parameters=[s.NumberFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class NumberListView(ApiListView):
    """The numbers the tenant holds (GET), or rent one (POST): a given number or any matching the filters."""

    required_scope = Scope.NUMBERS
    serializer_class = s.HeldNumberSerializer
    pagination_class = ByNumberPagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PhoneNumber.objects.none()
        return selectors.numbers_held(tenant=self.request.auth.tenant)

    @extend_schema(request=s.NumberAssignSerializer, responses={201: s.AssignmentSerializer})
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
        return Response(s.AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)


class NumberDetailView(ApiView):
    """Release a number the tenant holds (its assignment, or its lease)."""

    required_scope = Scope.NUMBERS
    serializer_class = s.HeldNumberSerializer

    @extend_schema(responses={204: None})
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

    @extend_schema(request=s.LeaseCreateSerializer, responses={201: s.LeaseSerializer})
    def post(self, request):
        data = s.LeaseCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lease = services.number_lease_acquire(tenant=request.auth.tenant, actor=_actor(request), **data.validated_data)
        return Response(s.LeaseSerializer(lease).data, status=status.HTTP_201_CREATED)


class LeaseDetailView(ApiView):
    """One lease (GET), or end it early (DELETE; ending an ended lease changes nothing)."""

    required_scope = Scope.NUMBERS
    serializer_class = s.LeaseSerializer

    def get(self, request, lease_id):
        return Response(s.LeaseSerializer(selectors.lease_get(tenant=request.auth.tenant, public_id=lease_id)).data)

    @extend_schema(responses={200: s.LeaseSerializer})
    def delete(self, request, lease_id):
        lease = selectors.lease_get(tenant=request.auth.tenant, public_id=lease_id)
        services.number_lease_release(tenant=request.auth.tenant, lease=lease, actor=_actor(request))
        return Response(s.LeaseSerializer(lease).data)


class LeaseExtendView(ApiView):
    """Move a running lease's end `ttl_seconds` later."""

    required_scope = Scope.NUMBERS
    serializer_class = s.LeaseSerializer

    @extend_schema(request=s.LeaseExtendSerializer, responses={200: s.LeaseSerializer})
    def post(self, request, lease_id):
        # Found first: another tenant's lease is a 404 whatever the body.
        lease = selectors.lease_get(tenant=request.auth.tenant, public_id=lease_id)
        data = s.LeaseExtendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lease = services.number_lease_extend(tenant=request.auth.tenant, lease=lease, actor=_actor(request),
                                             **data.validated_data)
        return Response(s.LeaseSerializer(lease).data)



# --- Inbound messages -----------------------------------------------------------------------------


class InboundMessageListView(ApiListView):
    """The tenant's inbound messages, newest first; filters to, from, lease, has_code, received_after/before."""

    required_scope = Scope.NUMBERS
    serializer_class = s.InboundMessageSerializer
    pagination_class = ByReceivedPagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return InboundMessage.unscoped.none()
        query = s.InboundFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.inbound_messages(tenant=self.request.auth.tenant, **query.validated_data)

    @extend_schema(parameters=[s.InboundFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InboundMessageDetailView(ApiView):
    """One inbound message of the tenant."""

    required_scope = Scope.NUMBERS
    serializer_class = s.InboundMessageSerializer

    def get(self, request, inbound_id):
        message = selectors.inbound_message_get(tenant=request.auth.tenant, public_id=inbound_id)
        return Response(s.InboundMessageSerializer(message).data)


class LeaseMessagesView(ApiView):
    """The lease's inbound messages, oldest first; with `wait` (max 30 s) and none yet, waits for the first.

    Routed through numbers/api/longpoll.py, which does the waiting without a thread or a database
    connection: this view only answers at once, or leaves `request.lease_wait` for the wait."""

    required_scope = Scope.NUMBERS
    serializer_class = s.InboundMessageSerializer
    queryset = InboundMessage.unscoped.none()

    @extend_schema(parameters=[s.LeaseMessagesQuerySerializer,
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

    @extend_schema(request=s.SimulatorInboundSerializer, responses={201: s.InboundMessageSerializer})
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


class PoolListView(ApiListView):
    """The tenant's number pools by name (GET), or create one (POST). Send from one with `"from": "pool:NAME"`."""

    required_scope = Scope.NUMBERS
    serializer_class = s.PoolSerializer
    pagination_class = ByNamePagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return NumberPool.unscoped.none()
        return selectors.pool_list(tenant=self.request.auth.tenant)

    @extend_schema(request=s.PoolWriteSerializer, responses={201: s.PoolSerializer})
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

    def get(self, request, pool_id):
        return Response(s.PoolSerializer(selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)).data)

    @extend_schema(request=s.PoolUpdateSerializer, responses={200: s.PoolSerializer})
    def patch(self, request, pool_id):
        # Found first: another tenant's pool is a 404 whatever the body.
        pool = selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)
        data = s.PoolUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        pools.pool_update(tenant=request.auth.tenant, pool=pool, actor=_actor(request), **data.validated_data)
        return Response(s.PoolSerializer(selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pool_id):
        pool = selectors.pool_get(tenant=request.auth.tenant, public_id=pool_id)
        pools.pool_delete(tenant=request.auth.tenant, pool=pool, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
