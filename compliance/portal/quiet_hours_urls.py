"""/portal/compliance/quiet-hours/; accounts/portal/urls.py splices it into the `portal` namespace."""
from django.urls import path

from compliance.portal import quiet_hours

urlpatterns = [
    path("compliance/quiet-hours/", quiet_hours.quiet_hours_settings, name="quiet-hours"),
]
