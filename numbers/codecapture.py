"""Verification-code capture: the one-time code and the service it is for, read from an inbound SMS.

Pure Python, no models and no network. `capture(text)` anchors on code keywords
in many languages (验证码, code, código, код, 認証コード, ...), collects candidate
tokens (4-8 digits, digits grouped by a space or hyphen, uppercase letters with
digits), drops those that read as amounts, dates, times, durations, order,
card or phone numbers, and keeps the candidate nearest a keyword. The service
comes from the sender prefix (【X】, [X], "X:") or phrases such as "your X code";
when none of those is present it is None rather than a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Capture:
    code: str
    service: str | None


# Fullwidth digits and letters (common in CJK messages) map one to one onto
# ASCII, so offsets stay the same. Fullwidth punctuation stays: "2846，10分钟"
# is a code and a duration, not the decimal "2846,10".
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))}

_KEYWORD = re.compile(
    r"(?i:verif\w*|passcode|one[- ]time|code|c[óo]digo|codice|\bkode|\bkod\w*|clave|senha|token"
    r"|код|пароль|подтвер\w*|mã|ma xac|رمز|كود)"
    r"|\b(?:OTP|otp|PIN|pin|(?:m|push|sms|chip)?TAN)\b"
    r"|验证|校验码|动态码|确认码|认证码|动态密码|动态口令|驗證|認証番号|暗証番号|認証|確認コード|確認番号|コード|パスワード|인증"
)

# Codes for something other than signing in: masked before keywords are read,
# so "promo code SAVE20" is not a verification code.
_NOT_OTP = re.compile(
    r"(?i:promo(?:tional)?\s?codes?|qr[ -]?codes?|bar\s?codes?|c[óo]digo (?:qr|postal|de barras)|code postal|code[- ]barre"
    r"|postleitzahl|почтов\w* индекс|coupon\s?codes?|discount\s?codes?|voucher\s?codes?|gift\s?codes?"
    r"|zip\s?codes?|postal\s?codes?|post\s?codes?|area\s?codes?|referral\s?codes?"
    r"|c[óo]digo promocional|c[óo]digo de (?:desconto|descuento|rastreio|rastreamento|seguimiento)"
    r"|cup[oó]m|cup[oó]n|gutschein\w*|code promo\w*|промокод\w*|трек-?код\w*)"
    r"|优惠码|二维码|兑换码|邀请码|取件码|クーポンコード"
)

# Runs of digits joined by single separators; what joins them decides what they are.
_NUMBER_RUN = re.compile(r"(?<![0-9A-Za-z])\+?(?>\d+(?:[ \-.:/,]\d+)*)(?![0-9A-Za-z])")
_ALNUM = re.compile(r"(?<![0-9A-Za-z+/=-])(?=[A-Z]*\d)(?=\d*[A-Z])[A-Z0-9]{4,8}(?![0-9A-Za-z+/=])")

_CURRENCY_BEFORE = re.compile(r"(?:[¥$€£₽₹]|R\$|(?i:rmb|cny|usd|eur|gbp|brl|mxn|jpy|rub|rur)|人民币|金额|金額)\s*$")
_UNIT_AFTER = re.compile(
    r"^\s*(?:[元円₽€$年月日号時时分秒]|(?i:руб|р\.|eur|usd|gbp|brl|rub|cny|jpy|reais|d[óo]lares|dollars|euros?|yen"
    r"|h\b|hrs?\b|hours?|horas?|stunden?|heures?|min|secs?\b|seconds?|segundos?|sekunden|minut|минут|мин|секунд|час"
    r"|days?|d[ií]as|tage|jours|дн))"
)
_DATE_BEFORE = re.compile(
    r"(?:[年月]|(?i:\b(?:jan|feb|m[aä]r|apr|ma[yi]|jun|jul|aug|sep|o[ck]t|nov|de[cz])\w*\.?))\s*$"
)
# Words after which a number is an order, parcel, card, account or phone
# number, unless a code keyword comes between the word and the number.
_CONTEXT_WORDS = re.compile(
    r"(?i:order|tracking|invoice|parcel|package|shipment|pedido|encomenda|factura|nota fiscal|bestell\w*|sendung"
    r"|commande|colis|заказ|посылк|отправлени|ending|ends in|final|terminad[ao]|endet|card|cart[ãa]o|tarjeta"
    r"|karte|carte|карт\w*|account|cuenta|conta|konto|compte|сч[её]т|call|llam\w*|ligu\w*|anruf\w*|appel\w*"
    r"|звон\w*|tel\w*|phone|hotline|ref\w*|no\.|nº|flight|gate|seat|vuelo|voo|flug|vol|рейс|room|zimmer)"
    r"|[#№]|订单|单号|运单|快递|尾号|末尾|账户|賬戶|致电|拨打|电话|热线|客服|注文|番号|お問い合わせ|電話|주문|전화"
)
_PHONE_BEFORE = re.compile(r"\+\d{0,3}[ -]?\(?$")
_MAX_DISTANCE = 100
# Ten concatenated segments are about 1,600 characters; reading no further keeps
# the keyword-by-candidate scoring cheap on hostile input.
_MAX_TEXT = 4000


@dataclass(frozen=True)
class _Candidate:
    code: str
    start: int
    end: int


def capture(text: str) -> Capture | None:
    """The verification code a message carries, with its service; None when it carries none."""
    if not isinstance(text, str) or not text:
        return None
    plain = text[:_MAX_TEXT].translate(_FULLWIDTH)
    masked = _NOT_OTP.sub(lambda m: " " * len(m.group()), plain)
    keywords = [(m.start(), m.end()) for m in _KEYWORD.finditer(masked)]
    if not keywords:
        return None
    best = _nearest(_candidates(plain, keywords), keywords)
    if best is None:
        return None
    return Capture(code=best.code, service=service_of(plain))


def _candidates(text: str, keywords: list[tuple[int, int]]) -> list[_Candidate]:
    found = [c for m in _NUMBER_RUN.finditer(text) for c in _from_number_run(text, m)]
    found += [_Candidate(m.group(), m.start(), m.end()) for m in _ALNUM.finditer(text)]
    senders = [m.span() for m in (_SENDER_SPAN_START.search(text), _BRACKET_END.search(text)) if m]
    return [
        c
        for c in found
        if not _in_context(text, c, keywords) and not any(s <= c.start and c.end <= e for s, e in senders)
    ]


def _from_number_run(text: str, match: re.Match[str]) -> list[_Candidate]:
    run, start = match.group(), match.start()
    if run.startswith("+") or _PHONE_BEFORE.search(text[max(0, start - 6) : start]):
        return []  # an international phone number
    if re.search(r"\d[.,:/]\d", run):
        return []  # an amount, a decimal, a date or a time
    groups = re.split(r"[ -]", run)
    if len(groups) == 1:
        return [_Candidate(run, start, match.end())] if 4 <= len(run) <= 8 else []
    if _is_date(groups) or _is_phone(run, groups):
        return []
    if _is_grouped_code(groups):
        return [_Candidate("".join(groups), start, match.end())]  # "305 218", "123-456", "4 8 2 9"
    pieces, offset = [], start
    for group in groups:  # e.g. a code and a duration: "482915 10"
        if 4 <= len(group) <= 8:
            pieces.append(_Candidate(group, offset, offset + len(group)))
        offset += len(group) + 1
    return pieces


def _is_date(groups: list[str]) -> bool:
    if len(groups) != 3:
        return False
    a, b, c = (int(g) for g in groups)
    if len(groups[0]) == 4:
        return 1 <= b <= 12 and 1 <= c <= 31  # 2024-05-01
    return len(groups[2]) in (2, 4) and max(a, b) <= 31 and min(a, b) <= 12 and min(a, b) >= 1  # 01-05-2024


def _is_phone(run: str, groups: list[str]) -> bool:
    """More than eight digits in hyphenated or short groups: a phone or account number ("1-800-432-1000")."""
    return sum(len(g) for g in groups) > 8 and ("-" in run or all(len(g) <= 4 for g in groups))


def _is_grouped_code(groups: list[str]) -> bool:
    total = sum(len(g) for g in groups)
    evenly = len(groups) <= 3 and all(2 <= len(g) <= 4 for g in groups)
    one_by_one = all(len(g) == 1 for g in groups)
    return 4 <= total <= 8 and (evenly or one_by_one)


def _in_context(text: str, cand: _Candidate, keywords: list[tuple[int, int]]) -> bool:
    """Whether the text around a candidate shows it is an amount, a date or another kind of number."""
    before = text[max(0, cand.start - 25) : cand.start]
    after = text[cand.end : cand.end + 10]
    if _CURRENCY_BEFORE.search(before[-8:]) or _UNIT_AFTER.match(after) or _DATE_BEFORE.search(before[-12:]):
        return True
    if re.fullmatch(r"(?:19|20)\d\d", cand.code) and re.match(r"\s*[-/.年]\s*\d", after):
        return True
    for word in _CONTEXT_WORDS.finditer(before):
        word_end = cand.start - len(before) + word.end()
        if re.search(r"\d", text[word_end : cand.start]):
            continue  # "order 7788 is 551902": the word names the other number
        if not any(k_start < cand.start and k_end >= word_end for k_start, k_end in keywords):
            return True
    return False


def _nearest(candidates: list[_Candidate], keywords: list[tuple[int, int]]) -> _Candidate | None:
    """The candidate closest to a keyword; ties go to one after the keyword, then to six characters, then first."""
    scored = []
    for cand in candidates:
        distance, after_keyword = min(_distance(cand, k) for k in keywords)
        if distance <= _MAX_DISTANCE:
            scored.append(((distance, after_keyword, len(cand.code) != 6, cand.start), cand))
    return min(scored, key=lambda pair: pair[0])[1] if scored else None


def _distance(cand: _Candidate, keyword: tuple[int, int]) -> tuple[int, int]:
    k_start, k_end = keyword
    if k_end <= cand.start:
        return cand.start - k_end, 0
    if cand.end <= k_start:
        return k_start - cand.end, 1
    return _MAX_DISTANCE + 1, 1  # the keyword lies inside the candidate


# --- service -----------------------------------------------------------------

# A name: up to three words, the first capitalized (or camel-cased like iFood).
_WORD = r"(?:[A-ZÀ-ÖØ-ÞА-ЯЁ][\w.&'!+-]*|[a-z]+[A-Z]\w*)"
_NAME = rf"(?P<name>{_WORD}(?: (?:(?:of|de|do|da|du|del|der|und|and|&) )?{_WORD}){{0,2}})"
_CODE_MODIFIERS = (
    r"(?: (?i:account|security|verification|login|log-in|sign-in|signin|confirmation|access|one-time|ID|2FA|Guard))*"
)
_CARRIER_MARKERS = re.compile(r"^\s*(?:<#>|\[(?:Web발신|국외발신|국제발신|광고)\])\s*")
_BRACKET_START = re.compile(r"^\s*[【\[]\s*(?P<name>[^】\]\n]{1,30}?)\s*[】\]]")
_BRACKET_END = re.compile(r"【\s*(?P<name>[^】\n]{1,30}?)\s*】\s*$")
# The sender bracket itself ("【12306】") is never the code.
_SENDER_SPAN_START = re.compile(r"^\s*(?:<#>|\[(?:Web발신|국외발신|국제발신|광고)\])?\s*[【\[][^】\]\n]{1,30}[】\]]")
_SENDER_PREFIX = re.compile(rf"^\s*{_NAME}\s?[:：]")
_SERVICE_PHRASES = [
    re.compile(p)
    for p in (
        rf"\b{_NAME}{_CODE_MODIFIERS} (?i:code|PIN|passcode|OTP)\b",  # your Google verification code
        rf"\b(?i:verify your) {_NAME} (?i:account)",
        rf"\b(?i:sign(?:ing)? up for|register(?:ing)? for|signing up to) {_NAME}",
        rf"(?i:confirm\w*|verif\w*) (?i:seu|su|your|tu) (?i:número|numero|number|conta|cuenta|account)"
        rf" (?i:no|na|en|on|in|para|for) {_NAME}",
        rf"\b(?i:(?:log|logging|sign|signing) ?in ?to)(?: (?i:your))? {_NAME}",
        rf"\b(?i:\w*code|OTP|PIN|passcode|TAN) (?i:for|from|für|bei) {_NAME}",
        rf"(?i:c[óo]digo)(?: (?i:de|da) (?i:verificaci[óo]n|verifica[çc][ãa]o|seguridad|seguran[çc]a|acceso|acesso"
        rf"|confirma[çc][ãa]o|confirmaci[óo]n))? (?:(?i:de|do|da|del|para|ao|al|no|en) )?{_NAME}",
        rf"\b(?i:ihr|ihre|dein|deine) {_NAME}[- ](?i:code|bestätigungscode|sicherheitscode|verifizierungscode|tan)\b",
        rf"\b(?i:votre|ton) (?i:code)(?: (?i:de) (?i:vérification|confirmation|sécurité|connexion|validation))? {_NAME}",
        rf"\b(?i:code de (?:vérification|confirmation|sécurité|connexion|validation)) {_NAME}",
        rf"(?i:ваш|твой) (?i:код)(?: (?i:подтверждения|для входа))? {_NAME}",
        rf"\b(?i:kode (?:verifikasi|OTP)) {_NAME}",
        rf"\b(?i:mã|ma) (?i:xác thực|xac thuc|xác minh|xac minh|OTP) {_NAME}",
        rf"(?i:вход\w* в) {_NAME}",
        rf"\b(?i:codice)(?: (?i:di verifica))?(?: (?i:di|per))? {_NAME}",
        r"(?P<name>[A-Za-z][A-Za-z0-9!.&]*(?: [A-Za-z][A-Za-z0-9!.&]*){0,2}?)\s?(?:ID)?の?(?:認証|確認|セキュリティ|ワンタイム)",
        rf"(?:رمز|كود)[^0-9]{{0,30}}? (?:في|من|لـ) {_NAME}",
        rf"\s[-–—]\s?{_NAME}\s*$",  # "... Do not share with anyone. -HDFC Bank"
        rf"[.!]\s+{_NAME}\s*$",  # "... Никому не сообщайте. Wildberries"
    )
]
_STOPWORDS = frozenset(
    "your use the this a an enter here is to is: dear hi hello our new tu su seu sua o a el la le votre ton ihr ihre"
    " dein deine ваш твой vous du de da do please important alert security info notice reminder warning never do"
    " thanks thank regards"
    " don't not".split()
)
_TRAILING = re.compile(r"(?:[ -](?:ID|Account|account))+$")


def service_of(text: str) -> str | None:
    """The service a verification message names, or None when it names none clearly."""
    text = _CARRIER_MARKERS.sub("", text.translate(_FULLWIDTH), count=1)
    for pattern in (_BRACKET_START, _BRACKET_END, _SENDER_PREFIX):
        match = pattern.search(text)
        if match and (name := _clean_name(match.group("name"), bracketed=pattern is not _SENDER_PREFIX)):
            return name
    for pattern in _SERVICE_PHRASES:
        for match in pattern.finditer(text):
            if name := _clean_name(match.group("name")):
                return name
    return None


def _clean_name(raw: str, *, bracketed: bool = False) -> str | None:
    """The name without leading filler words; None when what is left is no name (a keyword, a filler word)."""
    words = raw.strip().rstrip(".,;:'").split(" ")
    while words and words[0].lower().strip("!,.:") in _STOPWORDS:
        words.pop(0)
    name = _TRAILING.sub("", " ".join(words)).strip(" -")
    if not name or _KEYWORD.search(name) or name.lower() in _STOPWORDS:
        return None
    if not bracketed and not re.search(r"[^\W\d_]", name):  # "【12306】" is a sender; a bare number is not
        return None
    return name
