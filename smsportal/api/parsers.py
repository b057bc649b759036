"""The /v1 JSON parser (DRF's default parser, REST_FRAMEWORK setting): hostile JSON gets a 400, never a 500.

`json.loads` accepts documents that break further in, wherever they sit in the body (`metadata`,
`variables`, a list of numbers...), so every value of every body is checked here once, naming the
field at fault:

- nesting: thousands of levels exhaust the recursion limit (RecursionError); more than MAX_DEPTH
  levels is refused as `json_too_deep`;
- NUL characters: PostgreSQL text and jsonb cannot hold them; `null_characters_not_allowed`, the
  code DRF's CharField gives;
- lone UTF-16 surrogates ("\\ud800"): not Unicode, cannot be encoded as UTF-8; `invalid_json`;
- numbers: an integer beyond 64 bits overflows a bigint column or a timedelta, and `1e400` parses
  as infinity, which jsonb refuses; `number_out_of_range`.
"""
from __future__ import annotations

import math
import re

from rest_framework import exceptions, parsers
from rest_framework.exceptions import ErrorDetail

# Containers (objects, arrays) nested in one another, the body itself included. Our bodies need
# three or four; metadata is free-form but limited to 4 KB anyway.
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


TOO_DEEP = f"The JSON body is nested too deeply (at most {MAX_DEPTH} levels)."


def _refused(path: str, message: str, code: str) -> exceptions.ValidationError:
    detail = [ErrorDetail(message, code=code)]
    return exceptions.ValidationError({path: detail} if path else detail)


def _child(path: str, key) -> str:
    # The same spelling as the error handler's field names: "metadata.order", "numbers[0]".
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _text_check(text: str, path: str) -> None:
    if "\x00" in text:
        raise _refused(path, "Null characters are not allowed.", "null_characters_not_allowed")
    if _SURROGATE.search(text):
        raise _refused(path, "A string holds a lone UTF-16 surrogate, which is not valid Unicode.", "invalid_json")


def _number_check(number: int | float, path: str) -> None:
    if isinstance(number, float) and not math.isfinite(number) or isinstance(number, int) and not (
            INT64_MIN <= number <= INT64_MAX):
        raise _refused(path, "The number is out of range.", "number_out_of_range")


def document_check(document) -> None:
    """Raise a 400 ValidationError for the first value of `document` we could not store or use.

    Iterative, so that it cannot itself run out of stack on a deep document."""
    stack = [(document, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            _text_check(value, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            _number_check(value, path)
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise _refused(path, TOO_DEEP, "json_too_deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _text_check(key, path)  # a bad key is reported at its object: echoing it would repeat it
                stack.append((item, _child(path, key), depth + 1))


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json's C decoder gives up at the interpreter's recursion limit (about 1,000 levels).
            raise _refused("", TOO_DEEP, "json_too_deep") from None
        document_check(document)
        return document
