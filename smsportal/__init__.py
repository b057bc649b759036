"""smsportal: multi-tenant SMS aggregation platform."""
from smsportal.celery import app as celery_app

__all__ = ("celery_app",)
