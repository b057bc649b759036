"""gunicorn's access log of the shipped `web` command (Procfile.dev): off unless WEB_ACCESS_LOG names a file."""
from __future__ import annotations

import re

import pytest

from smsportal.tests.servers import WebServer, http

# The server runs on the test database, as every WebServer test's does.
pytestmark = pytest.mark.django_db(transaction=True)
ACCESS_LINE = re.compile(r'"GET /v1/no-such-route HTTP/1\.1" 404 ')


@pytest.mark.parametrize("setting, logged", [("", False), ("-", True)])
def test_the_web_command_writes_request_lines_only_when_asked(tmp_path, setting, logged):
    with WebServer.from_procfile(tmp_path, env={"WEB_ACCESS_LOG": setting}) as web:
        for _ in range(3):
            assert http("GET", f"{web.url}/v1/no-such-route")[0] == 404
    # the log is complete once the server has stopped
    assert bool(ACCESS_LINE.search(web.log.read_text(errors="replace"))) is logged, web.tail()
