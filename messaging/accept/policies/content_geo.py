"""Geo permissions and the content policy (issue 12, docs/compliance.md "Content policy and geo permissions").

Both answer from per-process caches in compliance (the rules, a tenant's permissions and allowed domains): in
the common case a message costs no query. A flag rule's matches are written as ContentFlag rows in one
insert per request, on a send only (never on a quote).
"""
from __future__ import annotations

from compliance import content, countries, geo
from compliance.errors import ContentPolicyViolation, DestinationNotPermitted
from messaging.accept.registry import policy_check, reserve_step
from messaging.accept.steps import AcceptContext
from messaging.services import PreparedMessage


def _decided_country(context: AcceptContext, message: PreparedMessage) -> str:
    """The country the checks decide by (geo.geo_country), memoized per request by the number's own region and
    calling code (all it depends on): a batch to one country asks once."""
    memo = context.memo.setdefault("decided_country", {})
    key = (message.country, message.to[:4])
    if key not in memo:
        memo[key] = geo.geo_country(message.to, region=message.country)
    return memo[key]


@policy_check("geo_permission", codes=("destination_not_permitted",))
def geo_permission(*, context: AcceptContext, message: PreparedMessage) -> None:
    """The tenant may send to the recipient's country (its geo permissions); decided once per country a request."""
    iso = _decided_country(context, message)
    memo = context.memo.setdefault("geo_permission", {})
    if iso not in memo:
        memo[iso] = _geo_refusal(context, iso)
    if memo[iso] is not None:
        raise memo[iso]


def _geo_refusal(context: AcceptContext, iso: str) -> DestinationNotPermitted | None:
    if geo.geo_allowed(tenant_id=context.tenant.pk, home_country=context.tenant.home_country, country=iso):
        return None
    rule = countries.country_rule(iso)
    name = rule.name if rule else iso or "this destination"
    why = (" It needs an account manager's approval once enabled." if rule and rule.approval_required else
           " It is a high-risk destination: the owner must enable it." if rule and rule.risk == "high" else "")
    return DestinationNotPermitted(f"This account may not send to {name} ({iso}): enable it in geo permissions "
                                   f"(PUT /v1/geo-permissions).{why}", field="to")


@policy_check("content_policy", codes=("content_policy_violation",))
def content_policy(*, context: AcceptContext, message: PreparedMessage) -> None:
    """The content rules for the recipient's country and the message type: a block refuses the message, with
    the rule's id and reason; a flag lets it go and records a ContentFlag (sends only)."""
    iso = _decided_country(context, message)
    text = message.analysis.text
    # The verdict depends on the text, the country, the type and the template only: a batch of one text to one
    # country evaluates the rules once.
    memo = context.memo.setdefault("content_policy", {})
    key = (text, iso, message.message_type, message.template_ref)
    if key not in memo:
        memo[key] = content.content_evaluate(tenant_id=context.tenant.pk, text=text, country=countries.country_rule(iso),
                                             country_iso=iso, message_type=message.message_type,
                                             template_ref=message.template_ref)
    hits = memo[key]
    if not hits:
        return
    first = hits[0]
    if first.rule.action == "block":
        detail = f" ({first.detail})" if first.detail else ""
        raise ContentPolicyViolation(f"Blocked by content rule {first.rule.slug}: {first.rule.reason}{detail}",
                                     field="text")
    if context.quote:
        return
    context.memo.setdefault("content_flags", []).extend(
        content.ContentFlagRow(tenant_id=context.tenant.pk, hit=hit, to=message.to, country_iso=iso,
                               message_type=message.message_type, text=text) for hit in hits)


@reserve_step(writes=lambda context: False)
def content_flags_write(*, context: AcceptContext, drafts) -> None:
    """The request's content flags in one insert. Registered as a reserve step because that step runs once per
    send (never for a quote), after the checks, inside the send's transaction: a request refused as a whole
    rolls its flags back with it. `writes` is False so a single send stays one statement in the common case
    (nothing flagged); a flagged single send writes its flag in one statement of its own before the insert."""
    live = {(draft.message.to, draft.message.analysis.text) for draft in drafts}
    rows = [row for row in context.memo.pop("content_flags", ()) if (row.to, row.text) in live]
    if rows:
        content.content_flags_record(tenant=context.tenant, rows=rows)
