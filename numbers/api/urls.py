"""/v1 routes of numbers; the fixed paths come before numbers/<number_id>."""
from numbers.api import longpoll, views

from django.urls import path

urlpatterns = [
    path("numbers", views.NumberListView.as_view(), name="number-list"),
    path("numbers/available", views.AvailableNumberListView.as_view(), name="number-available"),
    path("numbers/leases", views.LeaseCreateView.as_view(), name="number-lease-list"),
    path("numbers/leases/<public_id:lease_id>", views.LeaseDetailView.as_view(), name="number-lease-detail"),
    path("numbers/leases/<public_id:lease_id>/messages", longpoll.lease_messages_view(), name="number-lease-messages"),
    path("numbers/leases/<public_id:lease_id>/extend", views.LeaseExtendView.as_view(), name="number-lease-extend"),
    path("numbers/<public_id:number_id>", views.NumberDetailView.as_view(), name="number-detail"),
    path("inbound-messages", views.InboundMessageListView.as_view(), name="inbound-message-list"),
    path("inbound-messages/<public_id:inbound_id>", views.InboundMessageDetailView.as_view(), name="inbound-message-detail"),
    path("simulator/inbound", views.SimulatorInboundView.as_view(), name="simulator-inbound"),
    path("number-pools", views.PoolListView.as_view(), name="number-pool-list"),
    path("number-pools/<public_id:pool_id>", views.PoolDetailView.as_view(), name="number-pool-detail"),
]
