"""SMS character encoding (GSM-7 or UCS-2), smart encoding of look-alikes, and segmentation."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final, Literal, TypedDict

Encoding = Literal["GSM-7", "UCS-2"]
GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"

GSM7_SINGLE_SEGMENT_SEPTETS: Final = 160
GSM7_MULTIPART_SEPTETS: Final = 153  # 7 septets go to the concatenation header (UDH)
UCS2_SINGLE_SEGMENT_UNITS: Final = 70
UCS2_MULTIPART_UNITS: Final = 67  # UTF-16 code units; 3 go to the concatenation header

# 3GPP TS 23.038 (GSM 03.38) default alphabet, indexed by septet value. 0x1B is ESC, the escape to the
# extension table, not a character; 0x09 is the capital Ç, as in the spec table.
GSM7_BASIC_TABLE: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_ESCAPE: Final = 0x1B

# The extension table: each of these is sent as ESC + septet, so it costs 2 septets.
GSM7_EXTENSION_TABLE: Final[dict[str, int]] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_GSM7_BASIC: Final = frozenset(GSM7_BASIC_TABLE) - {chr(GSM7_ESCAPE)}
_GSM7: Final = _GSM7_BASIC | frozenset(GSM7_EXTENSION_TABLE)
_LIMITS: Final[dict[str, tuple[int, int]]] = {
    GSM7: (GSM7_SINGLE_SEGMENT_SEPTETS, GSM7_MULTIPART_SEPTETS),
    UCS2: (UCS2_SINGLE_SEGMENT_UNITS, UCS2_MULTIPART_UNITS),
}

# Smart encoding: look-alikes of GSM-7 characters. Applied all together, and only when the result is
# entirely GSM-7 and needs no more segments than the original (see _smart_encoded). Every key is
# outside GSM-7 and every value is GSM-7 (a test checks both), which makes smart encoding idempotent.
SMART_REPLACEMENTS: Final[dict[str, str]] = {
    # Quotes, primes, guillemets and accents used as apostrophes.
    "\u2018": "'",  # ‘
    "\u2019": "'",  # ’
    "\u201a": "'",  # ‚ (German opening single quote)
    "\u201b": "'",  # ‛
    "\u2032": "'",  # ′ prime
    "\u2039": "'",  # ‹
    "\u203a": "'",  # ›
    "\u02bc": "'",  # ʼ modifier letter apostrophe
    "\u00b4": "'",  # ´ acute accent
    "`": "'",  # the one printable ASCII character GSM-7 lacks
    "\u201c": '"',  # “
    "\u201d": '"',  # ”
    "\u201e": '"',  # „
    "\u201f": '"',  # ‟
    "\u2033": '"',  # ″ double prime
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    # Hyphens, dashes and the minus sign.
    "\u2010": "-",  # ‐ hyphen
    "\u2011": "-",  # ‑ non-breaking hyphen
    "\u2012": "-",  # ‒ figure dash
    "\u2013": "-",  # – en dash
    "\u2014": "-",  # — em dash
    "\u2015": "-",  # ― horizontal bar
    "\u2212": "-",  # − minus sign
    "\u2022": "-",  # • bullet
    # Other punctuation and symbols.
    "\u2026": "...",  # … ellipsis
    "\u2044": "/",  # ⁄ fraction slash
    "\u2215": "/",  # ∕ division slash
    "\u00d7": "x",  # × multiplication sign
    "\u2122": "TM",  # ™
    "\u00a9": "(C)",  # ©
    "\u00ae": "(R)",  # ®
    # Spaces and line breaks.
    "\t": " ",
    "\u00a0": " ",  # no-break space
    **{chr(code): " " for code in range(0x2000, 0x200B)},  # en quad .. hair space
    "\u202f": " ",  # narrow no-break space
    "\u205f": " ",  # medium mathematical space
    "\u3000": " ",  # ideographic space
    "\u2028": "\n",  # line separator
    "\u2029": "\n",  # paragraph separator
    # Invisible characters, removed.
    "\u00ad": "",  # soft hyphen
    "\u200b": "",  # zero-width space
    "\u200c": "",  # zero-width non-joiner
    "\u200d": "",  # zero-width joiner (emoji sequences keep it: they stay UCS-2 anyway)
    "\u200e": "",  # left-to-right mark
    "\u200f": "",  # right-to-left mark
    "\u2060": "",  # word joiner
    "\ufeff": "",  # byte order mark / zero-width no-break space
    # Latin-1 letters outside GSM-7, without their accent. ç becomes Ç: septet 0x09 is the only
    # c-cedilla GSM-7 has (the spec draws it as Ç; many handsets show it as ç), and it keeps the cedilla.
    **dict(zip("áâãêëíîïóôõúûýÿ", "aaaeeiiiooouuyy", strict=True)),
    **dict(zip("ÀÁÂÃÈÊËÌÍÎÏÒÓÔÕÙÚÛÝ", "AAAAEEEIIIIOOOOUUUY", strict=True)),
    "ç": "Ç",
}
_SMART_TABLE: Final = str.maketrans(SMART_REPLACEMENTS)


class UCS2Character(TypedDict):
    character: str
    position: int  # code-point index in the original text
    codepoint: str  # "U+201C"


@dataclass(frozen=True)
class EncodingResult:
    """How a text goes out: `text` is what is sent (after smart encoding), the rest describes it.

    `ucs2_characters` and `original_segment_count` describe the original text, so a quote can show
    which characters force UCS-2 and how many segments smart encoding saves.
    """

    text: str
    encoding: Encoding
    segments: list[str]
    segment_count: int
    characters: int  # code points of `text`
    units: int  # GSM-7: septets, escapes included; UCS-2: UTF-16 code units
    ucs2_characters: list[UCS2Character]
    smart_encoded: bool
    original_segment_count: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 default alphabet or its extension table."""
    return all(char in _GSM7 for char in text)


def split(text: str, encoding: Encoding) -> list[str]:
    """The segments `text` is sent in: one if it fits a single SMS, else greedily filled multipart ones.

    A character is never split, so neither is an escape pair (GSM-7) nor a surrogate pair (UCS-2).
    Empty text is one empty segment. Raises ValueError for text the encoding cannot carry.
    """
    single, multipart = _LIMITS[encoding]
    if encoding == GSM7 and len(text) <= single and _GSM7_BASIC.issuperset(text):
        return [text]  # the common case, without a cost per character: one septet each, and they fit
    costs = [_units(char, encoding) for char in text]
    if sum(costs) <= single:
        return [text]
    segments: list[str] = []
    start = used = 0
    for index, cost in enumerate(costs):
        if used + cost > multipart:
            segments.append(text[start:index])
            start, used = index, 0
        used += cost
    segments.append(text[start:])
    return segments


def analyze(text: str, *, smart_encoding: bool = True) -> EncodingResult:
    """Encoding, segments and counts of `text`; smart encoding may replace look-alikes (see SMART_REPLACEMENTS).

    Empty text is GSM-7 with 0 characters in 1 empty segment; callers reject it before sending.
    Raises ValueError for surrogate code points (malformed input; DRF's CharField already refuses them).
    """
    if _GSM7_BASIC.issuperset(text):
        return _analyze_basic(text)
    return analyze_full(text, smart_encoding=smart_encoding)


def _analyze_basic(text: str) -> EncodingResult:
    """analyze() for a text of the GSM-7 basic table only (most SMS): one septet per character, so the
    segments are plain slices, nothing to replace and nothing forcing UCS-2. Same result as
    analyze_full (a Hypothesis test holds them equal), in a few microseconds instead of tens."""
    size = len(text)
    if size <= GSM7_SINGLE_SEGMENT_SEPTETS:
        segments = [text]
    else:
        segments = [text[start:start + GSM7_MULTIPART_SEPTETS] for start in range(0, size, GSM7_MULTIPART_SEPTETS)]
    return EncodingResult(text=text, encoding=GSM7, segments=segments, segment_count=len(segments), characters=size,
                          units=size, ucs2_characters=[], smart_encoded=False, original_segment_count=len(segments))


def analyze_full(text: str, *, smart_encoding: bool = True) -> EncodingResult:
    """analyze() character by character: every text, whatever its alphabet."""
    original_segments = split(text, _encoding_of(text))
    sent = _smart_encoded(text, max_segments=len(original_segments)) if smart_encoding else text
    encoding = _encoding_of(sent)
    segments = split(sent, encoding)
    return EncodingResult(
        text=sent,
        encoding=encoding,
        segments=segments,
        segment_count=len(segments),
        characters=len(sent),
        units=sum(_units(char, encoding) for char in sent),
        ucs2_characters=_ucs2_characters(text),
        smart_encoded=sent != text,
        original_segment_count=len(original_segments),
    )


def _encoding_of(text: str) -> Encoding:
    return GSM7 if is_gsm7(text) else UCS2


def _units(char: str, encoding: Encoding) -> int:
    if encoding == GSM7:
        if char in _GSM7_BASIC:
            return 1
        if char in GSM7_EXTENSION_TABLE:
            return 2
        raise ValueError(f"{char!r} is not in the GSM-7 alphabet")
    if 0xD800 <= ord(char) <= 0xDFFF:
        raise ValueError(f"surrogate code point U+{ord(char):04X} is not a character")
    return 2 if ord(char) > 0xFFFF else 1


def _smart_encoded(text: str, *, max_segments: int) -> str:
    """The look-alike replacement of `text` if it is all GSM-7 in at most `max_segments`; else `text` itself.

    Replacing is all or nothing: a text that stays UCS-2 anyway is never altered. NFC first turns
    decomposed accents (e + U+0301) into the precomposed letters GSM-7 has (é).
    """
    if is_gsm7(text):
        return text
    candidate = unicodedata.normalize("NFC", text).translate(_SMART_TABLE)
    if not is_gsm7(candidate) or len(split(candidate, GSM7)) > max_segments:
        return text
    return candidate


def _ucs2_characters(text: str) -> list[UCS2Character]:
    return [
        {"character": char, "position": position, "codepoint": f"U+{ord(char):04X}"}
        for position, char in enumerate(text)
        if char not in _GSM7
    ]
