"""`${name}` templates: syntax, rendering without re-scanning, errors by code, inline-or-name detection."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging.templating import (
    TEMPLATE_NAME_PATTERN,
    TemplateSyntaxError,
    TemplateVariableInvalid,
    TemplateVariableMissing,
    looks_like_inline,
    placeholders,
    render,
    validate,
)

PROPERTY = settings(max_examples=300, deadline=None)

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,63}", fullmatch=True)
literals = st.text().filter(lambda text: "${" not in text)
values = st.one_of(st.text(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans())


# --- syntax -------------------------------------------------------------------------------------------


def test_it_lists_placeholders_in_order_each_once():
    assert placeholders("Hi ${name}, ${code} is your code, ${name}.") == ["name", "code"]
    assert placeholders("No placeholders, just $5 and $$.") == []


@pytest.mark.parametrize("name", ["a", "_", "otp", "OTP_2", "_private", "x" * 64, "A1b2_C3"])
def test_it_accepts_valid_names(name):
    assert placeholders(f"${{{name}}}") == [name]


@pytest.mark.parametrize(
    ("body", "position", "words"),
    [
        ("Your code ${otp", 10, "Unclosed"),
        ("${a${b}}", 0, "Nested"),
        ("x ${a ${b}", 2, "Nested"),
        ("Hello ${}", 6, "Empty"),
        ("${1x}", 0, "Invalid placeholder name '1x'"),
        ("ok ${a-b}", 3, "Invalid placeholder name 'a-b'"),
        ("${ a }", 0, "Invalid placeholder name ' a '"),
        ("${" + "x" * 65 + "}", 0, "Invalid placeholder name"),
        ("${é}", 0, "Invalid placeholder name 'é'"),
        ("${a} ${b", 5, "Unclosed"),
    ],
)
def test_it_rejects_bad_syntax_naming_the_position(body, position, words):
    with pytest.raises(TemplateSyntaxError) as caught:
        validate(body)

    assert caught.value.code == "invalid_template"
    assert caught.value.position == position
    assert words in caught.value.message
    assert f"position {position}" in str(caught.value)


def test_it_validates_when_listing_or_rendering():
    with pytest.raises(TemplateSyntaxError):
        placeholders("${}")
    with pytest.raises(TemplateSyntaxError):
        render("${", {})


def test_it_is_an_exception_without_django():
    assert issubclass(TemplateSyntaxError, Exception)
    assert validate("Hello ${name}") is None


# --- literal dollars -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rendered"),
    [
        ("Pay $5 now", "Pay $5 now"),
        ("$$ and $", "$$ and $"),
        ("}{ and {x} and $ {x}", "}{ and {x} and $ {x}"),
        ("Total $${amount}", "Total $12.50"),  # a dollar before a placeholder stays a dollar
        ("$$${amount}!", "$$12.50!"),
    ],
)
def test_it_keeps_dollars_literal(body, rendered):
    assert render(body, {"amount": "12.50"}) == rendered


def test_it_takes_a_literal_opener_from_a_variable():
    assert render("Type ${open}name} to insert a name", {"open": "${"}) == "Type ${name} to insert a name"


# --- rendering ----------------------------------------------------------------------------------------


def test_it_renders_values_as_text():
    body = "Hi ${name}, your OTP is ${otp}. Balance ${balance}, VIP ${vip}."

    rendered = render(body, {"name": "Zoë", "otp": 123456, "balance": 9.5, "vip": True})

    assert rendered == "Hi Zoë, your OTP is 123456. Balance 9.5, VIP True."


def test_it_never_rescans_an_inserted_value():
    assert render("Your OTP is ${otp}", {"otp": "${otp}"}) == "Your OTP is ${otp}"
    assert render("${a}${b}", {"a": "$", "b": "{b}"}) == "${b}"


def test_it_renders_unicode_values_and_bodies():
    assert render("${greeting} 😀 ${name}", {"greeting": "你好", "name": "Ünïcödé"}) == "你好 😀 Ünïcödé"


def test_it_ignores_extra_variables():
    assert render("Hi ${name}", {"name": "Ana", "unused": object()}) == "Hi Ana"


def test_it_names_the_first_missing_variable():
    with pytest.raises(TemplateVariableMissing) as caught:
        render("${a} ${b} ${c}", {"a": 1})

    assert caught.value.code == "template_variable_missing"
    assert caught.value.variable == "b"
    assert "'b'" in caught.value.message


@pytest.mark.parametrize(
    "value", [None, [1], {"x": 1}, b"bytes", 1.5j, float("nan"), float("inf"), object(), "lone \ud83d surrogate"]
)
def test_it_refuses_values_that_are_not_text_numbers_or_booleans(value):
    with pytest.raises(TemplateVariableInvalid) as caught:
        render("Hi ${name}", {"name": value})

    assert caught.value.code == "invalid_template_variable"
    assert caught.value.variable == "name"
    assert "'name'" in caught.value.message


# --- inline body or stored template name --------------------------------------------------------------


@pytest.mark.parametrize("template", ["OTP_${otp}", "Hello world", "Hi!", "a\tb", "x\n", "Olá", "${x}", "a b"])
def test_it_recognises_inline_bodies(template):
    assert looks_like_inline(template)


@pytest.mark.parametrize("template", ["welcome", "otp.v2", "order-shipped", "A_B-1.2", "Hello", "x" * 100])
def test_it_recognises_template_names(template):
    assert not looks_like_inline(template)


def test_it_does_not_call_the_empty_string_inline():
    assert not looks_like_inline("")


# --- properties ---------------------------------------------------------------------------------------


@PROPERTY
@given(literals)
def test_it_renders_a_body_without_placeholders_unchanged(body):
    assert placeholders(body) == []
    assert render(body, {}) == body


@PROPERTY
@given(st.lists(st.tuples(literals, names, values), max_size=8), literals)
def test_it_renders_literals_and_values_in_order(pieces, tail):
    body = "".join(literal + "${" + name + "}" for literal, name, _ in pieces) + tail
    variables = {name: value for _, name, value in pieces}

    rendered = render(body, variables)

    assert rendered == "".join(literal + str(variables[name]) for literal, name, _ in pieces) + tail
    assert placeholders(body) == list(dict.fromkeys(name for _, name, _ in pieces))


@PROPERTY
@given(st.from_regex(TEMPLATE_NAME_PATTERN, fullmatch=True))
def test_it_never_calls_a_template_name_inline(name):
    assert not looks_like_inline(name)


@PROPERTY
@given(
    st.from_regex(r"[A-Za-z0-9_.-]*", fullmatch=True),
    st.characters(codec="utf-8").filter(lambda char: not re.fullmatch(r"[A-Za-z0-9_.-]", char)),
    st.text(),
)
def test_it_calls_anything_with_a_character_outside_the_name_charset_inline(head, char, tail):
    assert looks_like_inline(head + char + tail)


@PROPERTY
@given(names, st.text())
def test_it_inserts_any_text_value_verbatim(name, value):
    assert render("<${" + name + "}>", {name: value}) == f"<{value}>"
