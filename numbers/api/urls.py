"""/v1 routes of numbers; the fixed paths come before numbers/<number_id>."""
from numbers.api import longpoll, views

from django.urls import path

urlpatterns = [
    path("numbers", views.NumberListView.as_view(), name="number-list"),
    path("numbers/available", views.AvailableNumberListView.as_view(), name="number-available"),
    path("numbers/leases", views.LeaseCreateView.as_view(), name="number-lease-list"),
    path("numbers/leases/<str:lease_id>", views.LeaseDetailView.as_view(), name="number-lease-detail"),
    path("numbers/leases/<str:lease_id>/messages", longpoll.lease_messages_view(), name="number-lease-messages"),
    path("numbers/leases/<str:lease_id>/extend", views.LeaseExtendView.as_view(), name="number-lease-extend"),
    path("numbers/<str:number_id>", views.NumberDetailView.as_view(), name="number-detail"),
    path("inbound-messages", views.InboundMessageListView.as_view(), name="inbound-message-list"),
    path("inbound-messages/<str:inbound_id>", views.InboundMessageDetailView.as_view(), name="inbound-message-detail"),
    path("simulator/inbound", views.SimulatorInboundView.as_view(), name="simulator-inbound"),
    path("number-pools", views.PoolListView.as_view(), name="number-pool-list"),
    path("number-pools/<str:pool_id>", views.PoolDetailView.as_view(), name="number-pool-detail"),
]
