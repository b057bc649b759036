"""The gunicorn worker class for smsportal.asgi: uvicorn, with its own proxy-header handling off.

uvicorn rewrites the client address and scheme from X-Forwarded-For / X-Forwarded-Proto for any
peer in gunicorn's forwarded_allow_ips (127.0.0.1 and ::1 unless told otherwise) before Django sees
the request. Django alone decides whom to believe (settings.TRUSTED_PROXIES, accounts/clientip.py),
so this worker never lets uvicorn do it, whatever the gunicorn settings say (smsportal/gunicorn_conf.py also
turns it off).
"""
from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker as BaseUvicornWorker


class UvicornWorker(BaseUvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {**BaseUvicornWorker.CONFIG_KWARGS, "proxy_headers": False,
                                     "forwarded_allow_ips": []}
