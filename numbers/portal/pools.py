"""Portal pages for number pools: the list, create, edit (settings and members) and delete."""
from __future__ import annotations

from numbers import pools, selectors
from numbers.errors import PoolNotFound
from numbers.models import NumberPool
from numbers.portal.pool_forms import PoolForm

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.portal.decorators import actor_for, add_domain_error, portal_view
from smsportal.errors import DomainError


def _pool(request: HttpRequest, pool_id: str) -> NumberPool:
    # Another tenant's pool is the same 404 as a missing one.
    try:
        return selectors.pool_get(tenant=request.tenant, public_id=pool_id)
    except PoolNotFound:
        raise Http404("not found") from None


@portal_view("numbers.view", methods=("GET", "HEAD"))
def pool_list(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/pools/list.html", {"pools": selectors.pool_list(tenant=request.tenant)})


@portal_view("numbers.manage")
def pool_create(request: HttpRequest) -> HttpResponse:
    held = list(selectors.numbers_poolable(tenant=request.tenant))
    form = PoolForm(request.POST if request.method == "POST" else None, numbers=held)
    if request.method == "POST" and form.is_valid():
        try:
            pool = pools.pool_create(tenant=request.tenant, actor=actor_for(request), **form.service_kwargs())
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"The number pool “{pool.name}” was created.")
            return redirect("portal:pools")
    return render(request, "portal/pools/form.html", {"form": form, "pool": None, "has_numbers": bool(held)})


@portal_view("numbers.manage")
def pool_edit(request: HttpRequest, pool_id: str) -> HttpResponse:
    pool = _pool(request, pool_id)
    held = list(selectors.numbers_poolable(tenant=request.tenant))
    initial = {"name": pool.name, "description": pool.description, "sticky_sender": pool.sticky_sender,
               "geo_match": pool.geo_match, "numbers": [n.public_id for n in pool.numbers.all()]}
    form = PoolForm(request.POST if request.method == "POST" else None, numbers=held, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            pool = pools.pool_update(tenant=request.tenant, pool=pool, actor=actor_for(request),
                                     **form.service_kwargs())
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"The number pool “{pool.name}” was saved.")
            return redirect("portal:pools")
    return render(request, "portal/pools/form.html", {"form": form, "pool": pool, "has_numbers": bool(held)})


@portal_view("numbers.manage")
def pool_delete(request: HttpRequest, pool_id: str) -> HttpResponse:
    pool = _pool(request, pool_id)
    if request.method == "POST":
        pools.pool_delete(tenant=request.tenant, pool=pool, actor=actor_for(request))
        messages.success(request, f"The number pool “{pool.name}” was deleted.")
        return redirect("portal:pools")
    return render(request, "portal/pools/delete.html", {"pool": pool})
