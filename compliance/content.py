"""The content policy (docs/compliance.md, "Content policy and geo permissions"): ContentRule rows compiled
once per process, and `content_evaluate`, which the send pipeline's check calls for every message.

Nothing here asks the database per message: the rules (platform data) are compiled at the first call and kept
COMPLIANCE_CACHE_SECONDS, a tenant's allowed domains likewise per tenant (one query per tenant and period); a
save or delete in this process clears both at once (compliance/signals.py), another process sees a change
within that time.
"""
from __future__ import annotations

import json
import re
import threading
import time as clock
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from compliance.countries import CountryRuleData
from compliance.models import AllowedDomain, ContentFlag, ContentRule
from smsportal.tenancy import tenant_context

if TYPE_CHECKING:
    from accounts.models import Tenant

RULES_FILE = Path(__file__).resolve().parent / "data" / "content_rules.json"

# A link's host: with a scheme, or bare (bit.ly/x, www.example.com).
_HOST = re.compile(r"(?:https?://)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})(?=[/:?#\s]|$|[)\].,!;'\"])",
                   re.IGNORECASE)


@dataclass(frozen=True)
class CompiledRule:
    slug: str
    category: str
    kind: str
    action: str
    reason: str
    countries: frozenset[str]  # empty: every country
    message_types: frozenset[str]  # empty: every type
    regex: re.Pattern | None = None
    domains: tuple[str, ...] = ()

    def applies(self, *, country: str, message_type: str) -> bool:
        return ((not self.countries or country in self.countries)
                and (not self.message_types or message_type in self.message_types))


@dataclass(frozen=True)
class Hit:
    """A rule that matched a message: a block refuses it, a flag lets it go and is recorded."""

    rule: CompiledRule
    detail: str = ""


@dataclass
class _Cache:
    rules: tuple[CompiledRule, ...]
    loaded: float
    domains: dict[int, tuple[float, frozenset[str]]] = field(default_factory=dict)


_cache: _Cache | None = None
_lock = threading.Lock()


def content_cache_clear() -> None:
    global _cache
    _cache = None


def _compile(row: ContentRule) -> CompiledRule | None:
    common = dict(slug=row.slug, category=row.category, kind=row.kind, action=row.action, reason=row.reason,
                  countries=frozenset(c.upper() for c in row.countries or ()),
                  message_types=frozenset(row.message_types or ()))
    if row.kind == ContentRule.Kind.REGEX:
        try:
            return CompiledRule(**common, regex=re.compile(row.pattern, re.IGNORECASE))
        except re.error:
            return None  # refused by the admin form; a row written another way is skipped, not a 5xx per send
    if row.kind == ContentRule.Kind.DOMAINS:
        return CompiledRule(**common, domains=domains_parse(row.pattern))
    return CompiledRule(**common)


def domains_parse(text: str) -> tuple[str, ...]:
    """Host names from a rule's pattern or a form: one a line (commas and spaces too), lower case, no dot ends."""
    return tuple(dict.fromkeys(d.strip().strip(".").lower() for d in re.split(r"[\s,]+", text or "") if d.strip(".")))


def _cached() -> _Cache:
    global _cache
    cache, now = _cache, clock.monotonic()
    if cache is None or now - cache.loaded >= settings.COMPLIANCE_CACHE_SECONDS:
        with _lock:
            cache = _cache
            if cache is None or now - cache.loaded >= settings.COMPLIANCE_CACHE_SECONDS:
                compiled = (_compile(row) for row in ContentRule.objects.filter(enabled=True).order_by("slug"))
                cache = _cache = _Cache(rules=tuple(rule for rule in compiled if rule is not None), loaded=now)
    return cache


def content_rules_compiled() -> tuple[CompiledRule, ...]:
    return _cached().rules


def _tenant_domains(tenant_id: int) -> frozenset[str]:
    cache, now = _cached(), clock.monotonic()
    known = cache.domains.get(tenant_id)
    if known is None or now - known[0] >= settings.COMPLIANCE_CACHE_SECONDS:
        # the accept pipeline runs in the tenant's context: the scoped manager filters to it
        domains = frozenset(AllowedDomain.objects.filter(tenant_id=tenant_id).values_list("domain", flat=True))
        known = cache.domains[tenant_id] = (now, domains)
    return known[1]


def _host_matches(host: str, domains: tuple[str, ...] | frozenset[str]) -> str | None:
    host = host.lower()
    return next((d for d in domains if host == d or host.endswith("." + d)), None)


def _required_missing(rule: CompiledRule, *, text: str, country: CountryRuleData | None, message_type: str,
                      template_ref: str) -> str | None:
    if country is None:
        return None
    if rule.category == "opt_out_missing":
        keyword = country.marketing_opt_out_keyword
        if keyword and keyword.lower() not in text.lower():
            return f"add {country.marketing_opt_out_text or keyword!r}"
    elif rule.category == "signature_missing":
        brackets = country.signature_required
        if brackets and len(brackets) == 2:
            opening, closing = brackets[0], brackets[1]
            body = text.lstrip()
            end = body.find(closing)
            if not body.startswith(opening) or end < 2:
                return f"open the message with {opening}YourBrand{closing}"
    elif rule.category == "template_missing":
        if country.template_required and not template_ref:
            return "send with a registered `template`"
    return None


def content_evaluate(*, tenant_id: int, text: str, country: CountryRuleData | None, country_iso: str,
                     message_type: str, template_ref: str = "") -> list[Hit]:
    """Every enabled rule that matches the message, in slug order (a block first: the caller refuses on it)."""
    hits: list[Hit] = []
    hosts: list[str] | None = None
    for rule in content_rules_compiled():
        if not rule.applies(country=country_iso, message_type=message_type):
            continue
        if rule.kind == ContentRule.Kind.REGEX:
            found = rule.regex.search(text)
            if found:
                hits.append(Hit(rule, detail=found.group(0)))
        elif rule.kind == ContentRule.Kind.DOMAINS:
            if hosts is None:
                hosts = [m.group(1) for m in _HOST.finditer(text)]
            for host in hosts:
                if _host_matches(host, rule.domains) and not _host_matches(host, _tenant_domains(tenant_id)):
                    hits.append(Hit(rule, detail=host.lower()))
                    break
        else:
            missing = _required_missing(rule, text=text, country=country, message_type=message_type,
                                        template_ref=template_ref)
            if missing:
                hits.append(Hit(rule, detail=missing))
    hits.sort(key=lambda hit: hit.rule.action != ContentRule.Action.BLOCK)
    return hits


@dataclass(frozen=True)
class ContentFlagRow:
    """A flag to record once the send commits."""

    tenant_id: int
    hit: Hit
    to: str
    country_iso: str
    message_type: str
    text: str


def content_flags_record(*, tenant: Tenant, rows: list[ContentFlagRow]) -> None:
    """Records the sends flag rules matched, for account managers (admin: Content flags): one insert. Runs
    after the send's commit, which may be outside the accept's tenant context: it sets the tenant's again."""
    with tenant_context(tenant):
        ContentFlag.objects.bulk_create([
            ContentFlag(tenant_id=row.tenant_id, rule_slug=row.hit.rule.slug, category=row.hit.rule.category,
                        to=row.to, country=row.country_iso, message_type=row.message_type, excerpt=row.text[:160])
            for row in rows])


def content_rules_seed() -> int:
    """Writes the dataset's content rules that are missing (by slug; an edited rule is left alone), as migration
    0007 does: for a database whose rows were flushed (a transactional test). Returns how many it wrote."""
    written = 0
    for rule in json.loads(RULES_FILE.read_text(encoding="utf-8"))["rules"]:
        _row, created = ContentRule.objects.get_or_create(
            slug=rule["slug"], defaults={name: rule[name] for name in
                                         ("category", "kind", "pattern", "countries", "message_types", "action",
                                          "reason")})
        written += created
    return written
