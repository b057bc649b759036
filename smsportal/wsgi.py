"""WSGI entry point for gunicorn: Django behind the request body limit (smsportal/bodylimit.py), with /v1
on the API's own middleware chain (smsportal/handlers.py)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.settings")
django_application = get_wsgi_application()

from smsportal.bodylimit import WsgiBodyLimit  # noqa: E402  (after Django is set up)
from smsportal.handlers import ApiRouter, ApiWSGIHandler  # noqa: E402

application = WsgiBodyLimit(ApiRouter(api=ApiWSGIHandler(), site=django_application))
