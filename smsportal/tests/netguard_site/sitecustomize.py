"""Put on a test server's PYTHONPATH (smsportal/tests/servers.py server_env): the server process runs
under the test network guard, loopback connects only and no DNS query leaving the machine.

Loaded by file, so the server's start imports nothing of ours earlier than it would.
"""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("test_netguard", Path(__file__).resolve().parent.parent / "netguard.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_module.install(resolver=True)
