"""/portal routes of numbers, in the `portal` namespace (included from accounts/portal/urls.py)."""
from numbers.portal import views

from django.urls import path

urlpatterns = [
    path("numbers/", views.number_list, name="numbers"),
    # Before numbers/<number_id>/..., which would take "search", "inbound" and "leases" for ids.
    path("numbers/search/", views.number_search, name="number-search"),
    path("numbers/inbound/", views.inbound_list, name="inbound-messages"),
    path("numbers/leases/<public_id:lease_id>/", views.lease_detail, name="lease-detail"),
    path("numbers/leases/<public_id:lease_id>/messages.json", views.lease_messages_json, name="lease-messages-json"),
    path("numbers/leases/<public_id:lease_id>/extend/", views.lease_extend, name="lease-extend"),
    path("numbers/leases/<public_id:lease_id>/release/", views.lease_release, name="lease-release"),
    path("numbers/<public_id:number_id>/release/", views.number_release, name="number-release"),
]
