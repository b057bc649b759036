"""What would block or change each kind of message, per destination country, for one tenant (the portal's
compliance overview, issue 12 section 10).

It reads the same sources as the send pipeline's checks (country rules, the tenant's geo permissions, the
quiet-hour presets and the tenant's narrowing, the content rules that apply per country and type), so the page
says what a send would meet without sending. Each country gives a row per message type with its findings: a
`block` (the send is refused, and how to unblock it), a `change` (the send goes, altered: deferred, a number
substituted) or a `requirement` (the text must carry something).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from compliance import content, countries, geo, quiet_hours
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

MESSAGE_TYPES = ("otp", "transactional", "marketing")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Finding:
    kind: str  # "block" | "change" | "requirement"
    code: str  # the error code a send would get (a block), or what changes
    text: str


@dataclass
class CountryOverview:
    iso: str
    name: str
    region: str
    risk: str
    permission: str  # geo status: allowed | off | pending_approval | rejected
    by_type: dict[str, list[Finding]] = field(default_factory=dict)

    @property
    def blocked_types(self) -> list[str]:
        return [kind for kind, found in self.by_type.items() if any(f.kind == "block" for f in found)]


def _window_text(preset: quiet_hours.Preset) -> str:
    spans: dict[str, list[str]] = {}
    for day, window in zip(DAY_NAMES, preset.days, strict=True):
        label = "no marketing" if window is None else f"{window[0]:%H:%M}–{window[1]:%H:%M}"
        spans.setdefault(label, []).append(day)
    parts = [f"{', '.join(days)} {label}" for label, days in spans.items()]
    return "; ".join(parts) + ("; not on public holidays" if preset.holidays else "")


def _sender_findings(rule: countries.CountryRuleData) -> list[Finding]:
    if rule.alphanumeric == "not_supported":
        return [Finding("change", "sender_substituted", f"Alphanumeric senders are not supported in {rule.name}: "
                        "a number from your fallback pool or the platform's shared senders is used instead.")]
    if rule.alphanumeric == "registration_required":
        return [Finding("block", "sender_not_registered", "An alphanumeric sender must be registered for "
                        f"{rule.name} first (sender IDs).")]
    return []


def _content_findings(rule: countries.CountryRuleData, message_type: str) -> list[Finding]:
    found = []
    if rule.signature_required:
        found.append(Finding("requirement", "content_policy_violation",
                             f"The text must open with your signature in {rule.signature_required}."))
    if rule.template_required:
        found.append(Finding("requirement", "content_policy_violation",
                             "The text must come from a registered template (send with `template`)."))
    if message_type == "marketing" and (rule.marketing_opt_out_text or rule.marketing_opt_out_keyword):
        found.append(Finding("requirement", "opt_out_text", "Marketing must carry the opt-out text "
                             f"{(rule.marketing_opt_out_text or rule.marketing_opt_out_keyword)!r}."))
    return found


@tenant_scoped
def compliance_overview(*, tenant: Tenant) -> list[CountryOverview]:
    """Every country of the rules dataset (and any other the tenant's geo permissions name), by name."""
    states = {state.country: state for state in geo.geo_permissions_list(tenant=tenant)}
    window = quiet_hours.tenant_window(tenant.pk)
    presets = quiet_hours.presets()
    rules = countries.country_rules()
    shortener_rules = [r for r in content.content_rules_compiled() if r.category == "shortener"]
    rows = []
    for iso, rule in rules.items():
        state = states.get(iso)
        permission = state.status if state else "off"
        row = CountryOverview(iso=iso, name=rule.name, region=rule.region, risk=rule.risk, permission=permission)
        for message_type in MESSAGE_TYPES:
            found: list[Finding] = []
            if permission != "allowed":
                how = {"pending_approval": "waiting for an account manager's approval",
                       "rejected": "not approved by an account manager"}.get(
                    permission, "enable it in geo permissions" + (" (the owner: high risk)" if rule.risk == "high"
                                                                  else ""))
                found.append(Finding("block", "destination_not_permitted", f"Not permitted: {how}."))
            if message_type == "marketing":
                found.append(Finding("requirement", "consent_required", "Each recipient needs an opt-in record "
                                     "(consents); without one the send is refused."))
            found += _sender_findings(rule)
            found += _content_findings(rule, message_type)
            if any(r.applies(country=iso, message_type=message_type) and r.action == "block"
                   for r in shortener_rules):
                found.append(Finding("requirement", "content_policy_violation",
                                     "No public link shorteners (use your own domain)."))
            preset = presets.get(iso)
            if preset is not None and quiet_hours.applies(message_type, window):
                found.append(Finding("change", "quiet_hours", f"Outside {_window_text(preset)} (recipient's local "
                                     "time) it is scheduled for the next allowed window."))
            if rule.max_parts:
                found.append(Finding("requirement", "message_too_long", f"At most {rule.max_parts} parts."))
            row.by_type[message_type] = found
        rows.append(row)
    return sorted(rows, key=lambda row: row.name)
