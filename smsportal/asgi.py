"""ASGI entry point: what the web server runs (gunicorn with uvicorn workers, Procfile.dev).

ASGI lets the lease long-poll (numbers/api/longpoll.py) wait without a thread; every other view
is sync and runs on a thread per request, as under WSGI. SMSPORTAL_ASGI tells the settings, which
then lend PostgreSQL connections from a pool rather than keeping one per thread.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.settings")
os.environ.setdefault("SMSPORTAL_ASGI", "true")
application = get_asgi_application()
