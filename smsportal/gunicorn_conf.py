"""gunicorn settings of every web command we ship (Procfile.dev, the README's production commands).

The commands name this module with `-c python:smsportal.gunicorn_conf`: keep it in every command.

Only Django decides whom to believe about the client: the socket peer is the client unless it is
in settings.TRUSTED_PROXIES (accounts/clientip.py, accounts/middleware.py). gunicorn's defaults
would decide first: it believes X-Forwarded-Proto, X-Forwarded-Ssl and X-Forwarded-Protocol
(secure_scheme_headers) and SCRIPT_NAME / PATH_INFO headers (forwarder_headers) from any peer in
forwarded_allow_ips, 127.0.0.1 and ::1 by default, and the uvicorn worker hands that list to
uvicorn, which then rewrites the client address from X-Forwarded-For. Any process on the host
could then claim any address and HTTPS.

Two web processes are shipped (Procfile.dev, README):
- `web`: smsportal.wsgi on gunicorn's sync workers, everything (API, portal, admin). 4 processes on a
  2-core box: a request is CPU-bound Python for most of its time, so processes give the parallelism,
  two per core to cover each one's waits on PostgreSQL and Redis. Sync, not threaded: a sync worker
  closes the connection after each answer, so every request goes to whichever process is free; the
  threaded worker keeps a keep-alive connection on the process that accepted it, and with 20
  keep-alive clients (bench/accept.py) that queued requests behind busy processes while others
  idled (p99 about 650 ms against 175 ms for sync, same run). A second thread gains nothing for
  CPU-bound work under the GIL. Slow clients are the proxy's to buffer (README). The ASGI router in
  front of every request cost ~1.7x the CPU (issue 9).
- `longpoll`: smsportal.asgi under uvicorn, one process: the lease long-poll waits there without a
  thread (numbers/api/longpoll.py); the proxy routes /v1/numbers/leases/*/messages to it. `web`
  serves that path too, holding a worker per waiting client (`make run` without a proxy).
"""

import os

# No peer may tell gunicorn (or the uvicorn worker) the client's address or scheme. This also
# overrides a FORWARDED_ALLOW_IPS in the environment: TRUSTED_PROXIES is the one knob.
# gunicorn's own access log, one line per request: off unless WEB_ACCESS_LOG names a file ("-" for the
# console, as `make run` does). In production the proxy in front logs every request (README); the line
# cost a tenth of a single send's throughput (docs/performance.md).
accesslog = os.environ.get("WEB_ACCESS_LOG") or None

forwarded_allow_ips = ""
# No header makes a request HTTPS at the server level (Django's SECURE_PROXY_SSL_HEADER does it,
# for trusted proxies only).
secure_scheme_headers: dict[str, str] = {}
# No header may set SCRIPT_NAME or PATH_INFO; headers with "_" in their name are dropped (gunicorn's
# default header_map), so they never reach Django as a look-alike of a dash-named header.
forwarder_headers = ""
header_map = "drop"
