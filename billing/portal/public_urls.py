"""Billing's pages open to everyone, before sign-up (mounted at /pricing/ from smsportal/urls.py, outside
/portal/ and its sign-in requirement)."""
from django.urls import path

from billing.portal import views

urlpatterns = [
    path("savings/", views.savings_public, name="pricing-savings"),
]
