"""Compliance's domain errors, each with its stable code (smsportal/errors.py maps them to JSON)."""
from __future__ import annotations

from smsportal.errors import NotFound


class CountryNotFound(NotFound):
    code = "not_found"
    message = "There are no rules for this country: use an ISO 3166-1 alpha-2 code GET /v1/countries lists."
