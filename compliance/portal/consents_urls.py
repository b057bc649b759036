"""/portal/compliance/consents/ and /suppressions/; accounts/portal/urls.py splices them into the `portal` namespace."""
from django.urls import path

from compliance.portal import consents

urlpatterns = [
    path("compliance/consents/", consents.consents, name="consents"),
    path("compliance/consents/export.csv", consents.consents_export, name="consents-export"),
    path("compliance/suppressions/", consents.suppressions, name="suppressions"),
    path("compliance/suppressions/export.csv", consents.suppressions_export, name="suppressions-export"),
    path("compliance/suppressions/<public_id:suppression_id>/delete/", consents.suppression_delete,
         name="suppression-delete"),
]
