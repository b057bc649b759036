"""WSGI entry point for gunicorn: Django behind the request body limit (smsportal/bodylimit.py)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.settings")
django_application = get_wsgi_application()

from smsportal.bodylimit import WsgiBodyLimit  # noqa: E402  (after Django is set up)

application = WsgiBodyLimit(django_application)
