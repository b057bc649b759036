"""Assertions shared by the API tests: the one error shape, and the world's public identifiers."""
from __future__ import annotations

ERROR_KEYS = {"code", "message", "field", "details", "reason"}
DETAIL_KEYS = {"field", "code", "message"}


def assert_error(response, status: int, code: str, *, field: str | None = None) -> dict:
    """The response is `{"error": {"code", "message", "field"?, "details"?}}` as JSON with this status and code.

    `field=None` means the body must not name a field. Returns the inner error object.
    """
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= ERROR_KEYS, error
    assert {"code", "message"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["code"] == code, error
    assert error.get("field") == field, error
    for item in error.get("details", []):
        assert set(item) <= DETAIL_KEYS and {"code", "message"} <= set(item), item
    return error
