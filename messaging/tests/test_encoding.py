"""GSM-7/UCS-2 detection, smart encoding and segmentation: known vectors, then properties."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from messaging import encoding
from messaging.encoding import (
    GSM7,
    GSM7_BASIC_TABLE,
    GSM7_ESCAPE,
    GSM7_EXTENSION_TABLE,
    GSM7_MULTIPART_SEPTETS,
    GSM7_SINGLE_SEGMENT_SEPTETS,
    SMART_REPLACEMENTS,
    UCS2,
    UCS2_MULTIPART_UNITS,
    UCS2_SINGLE_SEGMENT_UNITS,
    analyze,
    is_gsm7,
    split,
)

# Fast enough for every run (the whole file stays well under 10 s), thorough enough to find boundaries.
PROPERTY = settings(max_examples=300, deadline=None)

GSM_BASIC = [char for char in GSM7_BASIC_TABLE if char != "\x1b"]
EXTENSION = list(GSM7_EXTENSION_TABLE)
EMOJI = ["😀", "👍", "🎉", "𝄞"]


def septets(text: str) -> list[int]:
    """The GSM-7 septets of `text`, ESC + code for extension characters."""
    out: list[int] = []
    for char in text:
        if char in GSM7_EXTENSION_TABLE:
            out += [GSM7_ESCAPE, GSM7_EXTENSION_TABLE[char]]
        else:
            out.append(GSM7_BASIC_TABLE.index(char))
    return out


def utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-le")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def size(text: str, encoding: str) -> int:
    return len(septets(text)) if encoding == GSM7 else len(utf16_units(text))


def limits(encoding: str) -> tuple[int, int]:
    """(single, multipart) segment limits."""
    if encoding == GSM7:
        return GSM7_SINGLE_SEGMENT_SEPTETS, GSM7_MULTIPART_SEPTETS
    return UCS2_SINGLE_SEGMENT_UNITS, UCS2_MULTIPART_UNITS


# --- the alphabet -------------------------------------------------------------------------------------


def test_it_has_the_128_septets_of_the_default_alphabet_in_spec_order():
    assert len(GSM7_BASIC_TABLE) == 128
    named = {
        0x00: "COMMERCIAL AT",
        0x09: "LATIN CAPITAL LETTER C WITH CEDILLA",
        0x10: "GREEK CAPITAL LETTER DELTA",
        0x11: "LOW LINE",
        0x15: "GREEK CAPITAL LETTER OMEGA",
        0x1A: "GREEK CAPITAL LETTER XI",
        0x1C: "LATIN CAPITAL LETTER AE",
        0x1F: "LATIN CAPITAL LETTER E WITH ACUTE",
        0x24: "CURRENCY SIGN",
        0x40: "INVERTED EXCLAMATION MARK",
        0x5B: "LATIN CAPITAL LETTER A WITH DIAERESIS",
        0x5F: "SECTION SIGN",
        0x60: "INVERTED QUESTION MARK",
        0x7F: "LATIN SMALL LETTER A WITH GRAVE",
    }
    for code, name in named.items():
        assert unicodedata.name(GSM7_BASIC_TABLE[code]) == name, hex(code)
    assert GSM7_BASIC_TABLE[0x0A] == "\n" and GSM7_BASIC_TABLE[0x0D] == "\r"
    assert GSM7_BASIC_TABLE[0x1B] == "\x1b"
    assert GSM7_BASIC_TABLE[0x30:0x3A] == "0123456789"
    assert GSM7_BASIC_TABLE[0x41:0x5B] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert GSM7_BASIC_TABLE[0x61:0x7B] == "abcdefghijklmnopqrstuvwxyz"


def test_it_treats_escape_as_no_character_and_knows_the_extension_table():
    assert not is_gsm7("\x1b")
    assert sorted(GSM7_EXTENSION_TABLE) == sorted("\f^{}\\[~]|€")
    assert is_gsm7("@£$¥ÇΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡¿ÄÖÑÜ§äöñüà|^€{}[]~\\\f")
    assert not is_gsm7("`")  # the one printable ASCII character missing
    assert not is_gsm7("ç") and not is_gsm7("á")


def test_it_maps_every_smart_replacement_from_outside_gsm7_to_inside_it():
    for source, target in SMART_REPLACEMENTS.items():
        assert not is_gsm7(source), repr(source)
        assert is_gsm7(target), repr(source)


# --- known vectors ------------------------------------------------------------------------------------


def test_it_sends_empty_text_as_one_empty_gsm7_segment():
    result = analyze("")

    assert (result.encoding, result.segments, result.segment_count) == (GSM7, [""], 1)
    assert (result.characters, result.units, result.ucs2_characters) == (0, 0, [])


def test_it_fits_160_gsm7_characters_in_one_segment():
    result = analyze("a" * 160)

    assert (result.encoding, result.segment_count, result.units) == (GSM7, 1, 160)


def test_it_splits_161_gsm7_characters_into_153_and_8():
    result = analyze("a" * 161)

    assert [len(segment) for segment in result.segments] == [153, 8]
    assert result.segment_count == 2


def test_it_counts_an_extension_character_as_two_septets():
    result = analyze("€")

    assert (result.encoding, result.characters, result.units) == (GSM7, 1, 2)
    assert analyze("€" * 80).segment_count == 1
    assert analyze("€" * 80 + "a").segment_count == 2


def test_it_moves_an_extension_character_at_position_153_to_the_next_segment():
    text = "a" * 152 + "€" + "b" * 10

    result = analyze(text)

    assert result.segments == ["a" * 152, "€" + "b" * 10]
    assert result.units == 164


def test_it_fits_70_ucs2_characters_in_one_segment():
    result = analyze("你" * 70)

    assert (result.encoding, result.segment_count, result.units) == (UCS2, 1, 70)


def test_it_splits_71_ucs2_characters_into_67_and_4():
    result = analyze("你" * 71)

    assert [len(segment) for segment in result.segments] == [67, 4]


def test_it_counts_an_emoji_as_one_character_and_two_units():
    result = analyze("Hi 😀")

    assert (result.encoding, result.characters, result.units) == (UCS2, 4, 5)
    assert result.ucs2_characters == [{"character": "😀", "position": 3, "codepoint": "U+1F600"}]


def test_it_moves_an_emoji_at_a_segment_boundary_whole_to_the_next_segment():
    text = "a" * 66 + "😀" + "b" * 10

    result = analyze(text)

    assert result.segments == ["a" * 66, "😀" + "b" * 10]
    assert result.units == 78


def test_it_sends_chinese_text_as_ucs2():
    result = analyze("您的验证码是 123456")

    assert result.encoding == UCS2
    assert result.segment_count == 1
    assert [entry["position"] for entry in result.ucs2_characters] == [0, 1, 2, 3, 4, 5]


def test_it_sends_mixed_text_as_ucs2_and_lists_only_the_non_gsm_characters():
    result = analyze("Code €5 — ok 你好", smart_encoding=False)

    assert result.encoding == UCS2
    assert result.ucs2_characters == [
        {"character": "—", "position": 8, "codepoint": "U+2014"},
        {"character": "你", "position": 13, "codepoint": "U+4F60"},
        {"character": "好", "position": 14, "codepoint": "U+597D"},
    ]


def test_it_smart_encodes_curly_quotes_dashes_and_ellipsis_to_gsm7():
    result = analyze("“Hello” — world…")

    assert result.text == '"Hello" - world...'
    assert (result.encoding, result.smart_encoded, result.segment_count) == (GSM7, True, 1)
    assert [entry["position"] for entry in result.ucs2_characters] == [0, 6, 8, 15]


def test_it_reports_the_segments_smart_encoding_saves():
    text = "It’s " * 20  # 100 characters: 2 UCS-2 segments, 1 GSM-7 segment

    result = analyze(text)

    assert (result.original_segment_count, result.segment_count) == (2, 1)


def test_it_leaves_the_text_alone_when_an_emoji_remains():
    text = "“Hello” — world… 😀"

    result = analyze(text)

    assert (result.text, result.encoding, result.smart_encoded) == (text, UCS2, False)


def test_it_leaves_the_text_alone_when_smart_encoding_would_cost_more_segments():
    text = "©" * 70  # 1 UCS-2 segment; "(C)" * 70 would be 210 septets, 2 segments

    result = analyze(text)

    assert (result.text, result.encoding, result.segment_count) == (text, UCS2, 1)


def test_it_does_not_smart_encode_when_asked_not_to():
    result = analyze("It’s", smart_encoding=False)

    assert (result.text, result.encoding, result.smart_encoded) == ("It’s", UCS2, False)


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("a\u00a0b\u2009c\u3000d\te", "a b c d e"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("• one\n• two", "- one\n- two"),
        ("™ © ®", "TM (C) (R)"),
        ("«Olá», disse ‘você’", "\"Ola\", disse 'voce'"),
        ("Français ÀÉÈ", "FranÇais AÉE"),
        ("Cafe\u0301", "Café"),  # decomposed accent composes to the GSM-7 é
    ],
)
def test_it_smart_encodes_look_alikes(text, sent):
    assert analyze(text).text == sent


def test_it_refuses_to_split_text_its_encoding_cannot_carry():
    with pytest.raises(ValueError, match="GSM-7"):
        split("你", GSM7)
    with pytest.raises(ValueError, match="surrogate"):
        analyze("bad \ud800")


# --- properties ---------------------------------------------------------------------------------------


def texts(alphabet: st.SearchStrategy[str], *, max_size: int) -> st.SearchStrategy[str]:
    """Text of a uniformly drawn length, so that multipart sizes are as common as short ones."""
    return st.integers(0, max_size).flatmap(lambda n: st.text(alphabet, min_size=n, max_size=n))


def near_a_boundary(special: list[str]) -> st.SearchStrategy[str]:
    """GSM-7 filler up to around a segment boundary, then a 2-unit or replaceable character, then more."""
    return st.builds(
        lambda filler, char, tail: "a" * filler + char + tail,
        st.integers(60, 165),
        st.sampled_from(special),
        st.text(st.sampled_from(GSM_BASIC + special), max_size=20),
    )


gsm_text = texts(st.sampled_from(GSM_BASIC), max_size=500)
extension_heavy = texts(st.sampled_from(EXTENSION + ["a", " "]), max_size=400)
astral_heavy = texts(st.sampled_from(EMOJI + ["a", "é", "你"]), max_size=200)
look_alikes = texts(st.sampled_from(list(SMART_REPLACEMENTS) + GSM_BASIC[:40] + EXTENSION), max_size=400)
expanding = texts(st.sampled_from(["…", "©", "®", "™", "a"]), max_size=200)  # 1 UCS-2 unit, up to 3 septets
unicode_text = texts(st.characters(codec="utf-8"), max_size=300)  # utf-8: no surrogate code points
boundaries = st.one_of(near_a_boundary(EXTENSION), near_a_boundary(EMOJI), near_a_boundary(list(SMART_REPLACEMENTS)))
any_text = st.one_of(gsm_text, extension_heavy, astral_heavy, look_alikes, expanding, unicode_text, boundaries)


@PROPERTY
@given(any_text, st.booleans())
def test_it_segments_losslessly_within_the_limits(text, smart):
    result = analyze(text, smart_encoding=smart)

    assert "".join(result.segments) == result.text
    assert result.segment_count == len(result.segments)
    assert result.units == size(result.text, result.encoding)
    single, multipart = limits(result.encoding)
    limit = single if result.segment_count == 1 else multipart
    assert all(size(segment, result.encoding) <= limit for segment in result.segments)


@PROPERTY
@given(any_text)
def test_it_fills_every_segment_but_the_last(text):
    result = analyze(text)

    _, multipart = limits(result.encoding)
    for segment, following in zip(result.segments, result.segments[1:], strict=False):
        assert size(segment + following[0], result.encoding) > multipart


@PROPERTY
@given(st.one_of(gsm_text, extension_heavy, near_a_boundary(EXTENSION)))
def test_it_never_splits_an_escape_pair(text):
    result = analyze(text)

    encoded = [septets(segment) for segment in result.segments]
    assert [septet for segment in encoded for septet in segment] == septets(text)
    assert all(not segment or segment[-1] != GSM7_ESCAPE for segment in encoded)


@PROPERTY
@given(st.one_of(astral_heavy, unicode_text, near_a_boundary(EMOJI)))
def test_it_never_splits_a_surrogate_pair(text):
    result = analyze(text)

    for segment in result.segments:
        units = utf16_units(segment)
        assert not units or not 0xD800 <= units[-1] <= 0xDBFF
        assert not units or not 0xDC00 <= units[0] <= 0xDFFF


@PROPERTY
@given(any_text)
def test_it_lists_exactly_the_characters_that_force_ucs2(text):
    result = analyze(text, smart_encoding=False)

    assert [text[entry["position"]] for entry in result.ucs2_characters] == [
        entry["character"] for entry in result.ucs2_characters
    ]
    assert (result.encoding == UCS2) == bool(result.ucs2_characters)


@PROPERTY
@given(any_text)
def test_it_smart_encodes_idempotently_and_never_costs_a_segment(text):
    first = analyze(text)

    assert analyze(first.text).text == first.text
    assert first.segment_count <= first.original_segment_count
    assert first.original_segment_count == analyze(text, smart_encoding=False).segment_count
    assert first.smart_encoded == (first.text != text)
    if first.smart_encoded:
        assert first.encoding == GSM7
    else:
        assert first.text == text


# --- the GSM-7 basic fast path gives what the character-by-character analysis gives ---------------

_BASIC = "".join(sorted(encoding._GSM7_BASIC))
_ANY = _BASIC + "".join(encoding.GSM7_EXTENSION_TABLE) + "’“”–…éçÀ€😀\u200b\u00a0\t中"
# The team's shared test data (two UCS-2 verification messages), copied from /work/shared/data.
_SHARED_DATA = Path(__file__).parent / "data" / "seed_inbound_examples.json"


@settings(max_examples=2000, deadline=None)
@given(text=st.one_of(st.text(alphabet=_BASIC, max_size=800), st.text(alphabet=_ANY, max_size=400),
                      st.text(max_size=200).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))),
       smart=st.booleans())
@example(text="Your OTP is 123456", smart=True)
@example(text="x" * 160, smart=True)
@example(text="x" * 161, smart=False)
@example(text="", smart=True)
def test_it_analyzes_gsm7_basic_text_as_the_full_analysis_does(text, smart):
    assert encoding.analyze(text, smart_encoding=smart) == encoding.analyze_full(text, smart_encoding=smart)


def test_it_analyzes_the_shared_test_messages_as_the_full_analysis_does():
    texts = [item["text"] for item in json.loads(_SHARED_DATA.read_text())]
    for text in [*texts, "Hello world! 2 for £5 @ shop.", "a" * 1000]:
        assert encoding.analyze(text) == encoding.analyze_full(text)
