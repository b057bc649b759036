"""Text to submit_sm parts and deliver_sm payloads to text: GSM 03.38 (data_coding 0) and UCS-2 (8).

GSM-7 goes out unpacked (one septet per octet, the SMPP default for data_coding 0), extension
characters as ESC (0x1B) + septet. smpplib's own `gsm.gsm_encode` does not fit: its table has '`' at
0x5F where GSM 03.38 has '§', and its `make_parts` cuts the encoded bytes at a fixed size, which
can split an escape pair and differs from how messaging/encoding.split counts segments. So the
segments are ours (split) and the concatenation header (UDH) is built here; the PDUs stay smpplib's.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from messaging.encoding import GSM7, GSM7_BASIC_TABLE, GSM7_ESCAPE, GSM7_EXTENSION_TABLE, UCS2, split

DATA_CODING_GSM = 0
DATA_CODING_IA5 = 1
DATA_CODING_BINARY = 4
DATA_CODING_LATIN1 = 3
DATA_CODING_UCS2 = 8
ESM_CLASS_UDHI = 0x40

_GSM_ENCODE = {char: bytes([index]) for index, char in enumerate(GSM7_BASIC_TABLE) if index != GSM7_ESCAPE}
_GSM_ENCODE.update({char: bytes([GSM7_ESCAPE, septet]) for char, septet in GSM7_EXTENSION_TABLE.items()})
_GSM_CHARS = frozenset(_GSM_ENCODE)
_GSM_TRANSLATE = {ord(char): septets.decode("latin-1") for char, septets in _GSM_ENCODE.items()}
_GSM_EXTENSION_DECODE = {septet: char for char, septet in GSM7_EXTENSION_TABLE.items()}


@dataclass(frozen=True)
class Part:
    """One submit_sm's payload: `short_message` includes the UDH when esm_class has UDHI (0x40)."""

    short_message: bytes
    data_coding: int
    esm_class: int


@dataclass(frozen=True)
class Concatenation:
    """Where a part sits in a long message (from a UDH or the sar_* TLVs)."""

    reference: int
    total: int
    number: int


def gsm_encode(text: str) -> bytes:
    """Unpacked GSM 03.38 septets; raises ValueError for a character outside the alphabet."""
    if not _GSM_CHARS.issuperset(text):
        outside = next(char for char in text if char not in _GSM_CHARS)
        raise ValueError(f"{outside!r} is not in the GSM-7 alphabet")
    return text.translate(_GSM_TRANSLATE).encode("latin-1")  # every septet (and escape) is below 0x80


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 to text, leniently: an octet or escape outside the tables becomes '?'."""
    chars: list[str] = []
    escaped = False
    for octet in data:
        if escaped:
            chars.append(_GSM_EXTENSION_DECODE.get(octet, "?"))
            escaped = False
        elif octet == GSM7_ESCAPE:
            escaped = True
        else:
            chars.append(GSM7_BASIC_TABLE[octet] if octet < 0x80 else "?")
    return "".join(chars)


def message_parts(text: str, encoding: str, *, reference: int | None = None) -> list[Part]:
    """The submit_sm payloads of `text` in `encoding` ("GSM-7" | "UCS-2"), as messaging.encoding.split
    counts its segments: one without a UDH, or several with an 8-bit-reference UDH (IEI 0x00).

    Why 8-bit references only: a 16-bit one (IEI 0x08) makes the UDH 7 octets, which leaves 152
    septets or 66 UCS-2 units per part, not the 153/67 that our segment counts (and prices) assume.
    Never truncates; raises ValueError for text the encoding cannot carry or more than 255 parts.
    """
    data_coding = DATA_CODING_GSM if encoding == GSM7 else DATA_CODING_UCS2
    encode = gsm_encode if encoding == GSM7 else _ucs2_encode
    segments = split(text, GSM7 if encoding == GSM7 else UCS2)
    if len(segments) == 1:
        return [Part(encode(text), data_coding, 0)]
    if len(segments) > 255:
        raise ValueError(f"{len(segments)} parts: at most 255 fit a concatenated message")
    ref = random.randrange(256) if reference is None else reference % 256
    return [
        Part(bytes([0x05, 0x00, 0x03, ref, len(segments), number]) + encode(segment), data_coding, ESM_CLASS_UDHI)
        for number, segment in enumerate(segments, start=1)
    ]


def _ucs2_encode(text: str) -> bytes:
    return text.encode("utf-16-be")


def split_udh(payload: bytes) -> tuple[Concatenation | None, bytes]:
    """The concatenation element of a UDH (IEI 0x00 8-bit or 0x08 16-bit reference) and the payload
    after the UDH. Other elements are skipped; a malformed header gives (None, payload after it)."""
    if not payload:
        return None, payload
    end = 1 + payload[0]
    header, body = payload[1:end], payload[end:]
    position = 0
    while position + 2 <= len(header):
        iei, length = header[position], header[position + 1]
        value = header[position + 2:position + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            return Concatenation(value[0], value[1], value[2]), body
        if iei == 0x08 and length == 4 and len(value) == 4:
            return Concatenation(int.from_bytes(value[:2], "big"), value[2], value[3]), body
        position += 2 + length
    return None, body


def decode_text(payload: bytes, data_coding: int) -> str:
    """A deliver_sm's text by data_coding: 0 GSM, 1 IA5 (ASCII), 3 Latin-1, 8 UCS-2; binary (2, 4) and
    anything unknown as hex, so nothing is dropped. Never raises: bad octets become U+FFFD or '?'."""
    coding = data_coding
    if coding == DATA_CODING_GSM:
        return gsm_decode(payload)
    if coding == DATA_CODING_IA5:
        return payload.decode("ascii", errors="replace")
    if coding == DATA_CODING_LATIN1:
        return payload.decode("latin-1")
    if coding == DATA_CODING_UCS2:
        return payload.decode("utf-16-be", errors="replace")
    return payload.hex()
