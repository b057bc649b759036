"""Message templates: `${name}` placeholders, their validation and rendering, and inline-or-name detection.

Syntax: `${` always opens a placeholder `${name}`, name `[A-Za-z_][A-Za-z0-9_]{0,63}`, no spaces inside
the braces. Nothing else is special: "Pay $5", "$$" and a lone `}` are literal text, and a `$` before a
placeholder is literal, so "Total $${amount}" renders "Total $12.50". There is deliberately no escape
for a literal `${` (an escape like `$${` would turn that common price template into the text
"${amount}"); a body that needs a literal `${` gets it from a variable, since values are never re-scanned.
Positions in error messages and on `TemplateSyntaxError.position` are 0-based code-point indices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

NAME_PATTERN: Final = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
TEMPLATE_NAME_PATTERN: Final = r"[A-Za-z0-9_.-]{1,100}"

_NAME: Final = re.compile(NAME_PATTERN)
_TEMPLATE_NAME_CHARS: Final = re.compile(r"[A-Za-z0-9_.-]*")  # TEMPLATE_NAME_PATTERN's charset, any length
_VALUE_TYPES: Final = (str, int, float)  # bool is an int
_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # json.loads lets lone surrogates through


class TemplateError(Exception):
    """Base of the template errors; `code` is stable and `message` is for people."""

    code = "invalid_template"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class TemplateSyntaxError(TemplateError):
    code = "invalid_template"

    def __init__(self, message: str, *, position: int) -> None:
        self.position = position
        super().__init__(message)


class TemplateVariableMissing(TemplateError):
    code = "template_variable_missing"

    def __init__(self, variable: str) -> None:
        self.variable = variable
        super().__init__(f"No value for the template variable '{variable}'.")


class TemplateVariableInvalid(TemplateError):
    code = "invalid_template_variable"

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"The template variable '{variable}' {problem}.")


@dataclass(frozen=True)
class _Placeholder:
    name: str


def validate(body: str) -> None:
    """Raise TemplateSyntaxError for the first syntax error in `body`; return None when it is valid."""
    _parse(body)


def placeholders(body: str) -> list[str]:
    """The placeholder names of `body`, in order of first appearance, each once. Validates `body`."""
    names = [part.name for part in _parse(body) if isinstance(part, _Placeholder)]
    return list(dict.fromkeys(names))


def render(body: str, variables: Mapping[str, object]) -> str:
    """`body` with each placeholder replaced by str(value); values are inserted as text, never re-scanned.

    Extra variables are ignored. Raises TemplateSyntaxError, or, for the first placeholder in body order
    that has no usable value, TemplateVariableMissing or TemplateVariableInvalid (values must be str
    without surrogate code points, int, finite float or bool).
    """
    return "".join(_value(part.name, variables) if isinstance(part, _Placeholder) else part for part in _parse(body))


def looks_like_inline(template: str) -> bool:
    """True when an API `template` value is an inline body rather than the name of a stored template.

    Inline iff it has a character outside the name charset [A-Za-z0-9_.-]: so anything with `${`
    (`"OTP_${otp}"`), whitespace or punctuation is inline, and "welcome", "otp.v2" or "Hello" are
    names. The empty string is not inline; callers reject it before asking.
    """
    return _TEMPLATE_NAME_CHARS.fullmatch(template) is None


def _parse(body: str) -> list[str | _Placeholder]:
    parts: list[str | _Placeholder] = []
    position = 0
    while (start := body.find("${", position)) != -1:
        parts.append(body[position:start])
        close = body.find("}", start + 2)
        parts.append(_Placeholder(_name(body, start=start, close=close)))
        position = close + 1
    parts.append(body[position:])
    return [part for part in parts if part != ""]


def _name(body: str, *, start: int, close: int) -> str:
    """The name in the placeholder opening at `start` and closing at `close` (-1: never closed)."""
    if close == -1:
        raise TemplateSyntaxError(f"Unclosed placeholder: '${{' at position {start} has no '}}'.", position=start)
    name = body[start + 2 : close]
    if "${" in name:
        raise TemplateSyntaxError(f"Nested placeholder in the placeholder at position {start}.", position=start)
    if not name:
        raise TemplateSyntaxError(f"Empty placeholder '${{}}' at position {start}.", position=start)
    if not _NAME.fullmatch(name):
        raise TemplateSyntaxError(
            f"Invalid placeholder name '{name}' at position {start}: use 1-64 letters, digits or underscores, "
            "not starting with a digit.",
            position=start,
        )
    return name


def _value(name: str, variables: Mapping[str, object]) -> str:
    if name not in variables:
        raise TemplateVariableMissing(name)
    value = variables[name]
    if not isinstance(value, _VALUE_TYPES):
        raise TemplateVariableInvalid(name, f"must be a string, number or boolean, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise TemplateVariableInvalid(name, "must be a finite number")
    if isinstance(value, str) and _SURROGATE.search(value):
        raise TemplateVariableInvalid(name, "contains a surrogate code point, which is not a character")
    return str(value)
