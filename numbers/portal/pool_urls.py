"""/portal/number-pools/ routes; accounts/portal/urls.py splices them into the `portal` namespace."""
from numbers.portal import pools

from django.urls import path

urlpatterns = [
    path("number-pools/", pools.pool_list, name="pools"),
    path("number-pools/new/", pools.pool_create, name="pool-create"),
    path("number-pools/<str:pool_id>/edit/", pools.pool_edit, name="pool-edit"),
    path("number-pools/<str:pool_id>/delete/", pools.pool_delete, name="pool-delete"),
]
