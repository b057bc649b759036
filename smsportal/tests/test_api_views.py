"""Every /v1 view is an ApiView (so every POST honours Idempotency-Key), and the schema says so."""
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from smsportal.api.views import ApiView

# The views that serve the documentation itself.
EXEMPT = {SpectacularJSONAPIView, SpectacularSwaggerSplitView}

# Routes whose views are not on ApiView yet, each with why. The list can only shrink: an entry whose
# route is gone, or whose view has become an ApiView, fails the test until it is removed.
PENDING: dict[str, str] = {}


def _v1_views(patterns=None, prefix=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _v1_views(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and (prefix + str(entry.pattern)).startswith("v1/"):
            callback = entry.callback
            yield "/" + prefix + str(entry.pattern), getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def _is_api_view(view) -> bool:
    return isinstance(view, type) and issubclass(view, ApiView)


def test_it_builds_every_v1_view_on_api_view():
    views = dict(_v1_views())
    assert len(views) > len(EXEMPT), "no /v1 routes found"
    outside = {route for route, view in views.items() if view not in EXEMPT and not _is_api_view(view)}
    assert outside - set(PENDING) == set(), "inherit smsportal.api.views.ApiView (or ApiListView) in these /v1 views"
    done = {route for route in PENDING if route not in outside}
    assert done == set(), "these routes are gone or on ApiView now: remove them from PENDING"


@pytest.mark.django_db
def test_it_documents_the_idempotency_key_on_posts_only(client):
    pending = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route) for route in PENDING}
    paths = client.get("/v1/openapi.json").json()["paths"]
    posts = [op for path, ops in paths.items() if path not in pending for method, op in ops.items() if method == "post"]
    others = [op for ops in paths.values() for method, op in ops.items() if method in ("get", "delete")]
    assert posts and others

    def has_header(op):
        return any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in op.get("parameters", []))

    assert all(has_header(op) for op in posts)
    assert not any(has_header(op) for op in others)
