"""The places that read or write tenant-owned rows across tenants, each with its reason.

`Model.objects` on a tenant-owned model fails closed without an active tenant (smsportal/tenancy.py);
the two explicit escapes are `Model.unscoped` and `all_tenants()`. This test scans the project's
modules (not tests, not migrations) for every use of either and compares the set of places, by
module and function, with UNSCOPED_PLACES below: a new place fails until it is added here with its
reason, a place that no longer uses an escape fails until it is taken out, and each place must say
why in the code too, with a `# unscoped: ...` comment in the function. docs/tenancy.md explains the rule.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("accounts", "billing", "compliance", "messaging", "numbers", "smsportal", "bench")
ESCAPES = {"unscoped", "all_tenants"}

UNSCOPED_PLACES: dict[str, str] = {
    # Authentication and joining: the credential names the tenant; no context exists yet.
    "accounts/services/key_cache.py:_read": "the API-key lookup at authentication: the key names the tenant",
    "accounts/services/key_cache.py:_allowlist_read": "the key's allowlist at authentication, before its tenant is active",
    "accounts/selectors.py:membership_list_for_user": "a person's tenants, found from the person before any is active",
    "accounts/services/team.py:invitation_find": "the invitation token names the tenant; the invitee is not in it yet",
    "accounts/services/team.py:invitation_accept": "the invitee joins from outside the tenant; the token is the scope",
    "accounts/services/tenants.py:tenant_create": "a new tenant's first owner joins before any context can exist",
    # Audit events that belong to no tenant, or to each tenant of a person.
    "accounts/services/audit.py:audit_record": "an event of no tenant (staff, platform) or of each tenant of a person",
    "accounts/services/audit.py:_audit_everywhere": "a person's security event goes to every tenant they belong to",
    # Compliance's process caches for the accept pipeline's checks, and admin's reviews (issue 12).
    "compliance/fraud.py:_rules": "fraud allowances of every tenant, held in process memory with the rules",
    "compliance/quiet_hours.py:tenant_window": "every tenant's quiet-hours setting, held in process memory",
    "compliance/services.py:fraud_signal_allowlist": "admin's review of any tenant's signal: the allowance is its tenant's",
    "compliance/admin.py:FraudSignalAdmin.get_queryset": "the admin site: account managers review every tenant's signals",
    "compliance/admin.py:FraudAllowanceAdmin.get_queryset": "the admin site: every tenant's fraud allowances",
    "compliance/admin.py:ConsentRecordAdmin.get_queryset": "the admin site: every tenant's consent ledger",
    "compliance/admin.py:SuppressionAdmin.get_queryset": "the admin site: every tenant's suppressions",
    "compliance/admin.py:ConsentSettingsAdmin.get_queryset": "the admin site: every tenant's consent settings",
    "compliance/admin.py:ErasureRequestAdmin.get_queryset": "the admin site: every tenant's erasure requests",
    "compliance/retention.py:retention_redact": "beat's retention sweep, each tenant by its own retention days",
    "messaging/invariants.py:opt_out_violations": "the consent invariant over every tenant's messages (an operator's check)",
    # Staff and platform commands.
    "accounts/admin.py:_every_tenant.run": "the admin site: staff see every tenant",
    "compliance/geo.py:geo_approval_decide": "an account manager decides one geo approval request by its id (admin)",
    "compliance/sender_ids.py:sender_id_review": "an account manager reviews one sender ID by its id (admin)",
    # The send pipeline's workers, receipts and sweeps: they hold a message id, not a tenant.
    "messaging/lifecycle.py:message_transition": "one message by its id, from dispatch, receipts and sweeps",
    "messaging/lifecycle.py:_moved_portable": "messages by their ids, from batch dispatch, receipts and sweeps "
                                              "(on PostgreSQL the same rows by raw SQL, _moved_postgresql)",
    "messaging/lifecycle.py:_assigned_portable": "a batch transition's per-message values, by message ids (SQLite)",
    "messaging/events.py:message_events_expand": "a worker expands an accept's fan-out record by message ids, not under a tenant",
    "messaging/routing/quality.py:route_quality_rollup": "route quality is over every tenant's attempts on a route",
    "messaging/routing/quality.py:_latencies": "route latency percentiles over every tenant's attempts on a route",
    "messaging/routing/dispatching.py:messages_route": "routing a dispatch batch: attempts of claimed messages by their ids",
    "messaging/routing/dispatching.py:_policies": "dispatch reads the routing policy of each claimed message's tenant",
    "messaging/routing/dispatching.py:attempts_record": "the attempts a dispatch batch just made, by their ids",
    "messaging/routing/dispatching.py:attempts_finish": "receipt matching found the messages; their submitted attempts",
    "messaging/routing/dispatching.py:attempt_held": "a subquery by message: its attempts a connector waits for or holds",
    "messaging/routing/dispatching.py:attempts_abandon": "the sweeper reclaimed the message: its attempt, by message id",
    "messaging/routing/margins.py:_sent_attempts": "admin's margins (platform report): every tenant's sent attempts",
    "messaging/routing/margins.py:margins_by_tenant_country": "admin's margins by tenant and country, over every tenant",
    "messaging/routing/margins.py:messages_with_carrier_cost": "admin's message list: each message's own sent attempt",
    "messaging/connector/claims.py:attempts_claim": "a claim closes the stale attempts it found, by their ids",
    "messaging/connector/claims.py:_claimed_portable": "a connector claims every tenant's pending attempts of its carrier",
    "messaging/connector/claims.py:attempts_release": "a connector's own claims, by attempt ids",
    "messaging/connector/claims.py:claims_held": "a connector's own claims after a restart, by its name",
    "messaging/connector/claims.py:unknown_settle": "a connector's claims whose outcome is unknown, by attempt ids",
    "messaging/connector/claims.py:connector_claims_sweep": "the connector sweep over every tenant's waiting and orphaned attempts",
    "messaging/dispatch.py:_carrier_ids_record": "the carrier ids of a dispatch batch, by message ids",
    "messaging/dispatch.py:messages_dispatch": "a dispatch task carries message ids (an accept's or the sweeper's), not a tenant",
    "messaging/pipeline.py:message_dispatch": "the dispatch task carries the message id, not a tenant",
    "messaging/pipeline.py:_submit": "the message being dispatched, by its id",
    "messaging/pipeline.py:receipt_apply": "carrier receipt matching: the carrier's id names the message, any tenant's",
    "messaging/pipeline.py:receipts_apply": "carrier receipt matching in bulk: the carrier's ids name the messages",
    "messaging/parts.py:parts_record": "the parts of a dispatch batch's messages, by their ids",
    "messaging/parts.py:_matches": "carrier receipt matching in bulk: the carrier's ids name parts and messages",
    "messaging/parts.py:part_receipts_apply": "receipt matching found the parts: they and their messages, by ids",
    "messaging/parts.py:_delivered": "receipt matching found the messages: their parts, by message ids",
    "messaging/pipeline.py:receipts_unmatched": "which carrier ids of a callback name no message yet, any tenant's",
    "messaging/pipeline.py:_batch": "the message sweeps, over every tenant",
    "messaging/pipeline.py:_receipts_overdue": "the overdue-receipt sweep, over every tenant",
    "messaging/services.py:message_dispatch_publish": "after commit and from the sweeps, by the message's id",
    "messaging/handoff.py:_stamp": "after commit (no tenant context left), by the ids the accept just stored",
    "messaging/dispatcher.py:messages_hand_over": "the dispatcher claims every tenant's queued messages (the partial index)",
    "messaging/dispatcher.py:_publish": "a failed publish clears the stamps of the claim's own rows, by their ids",
    "messaging/events.py:message_queued_events": "the webhook worker expanding a fan-out row: its tenant and ids only",
    # Inbound messages: the tenant is found from the number's holder.
    "numbers/inbound.py:holding_at": "an inbound message finds its tenant from the number's holding",
    "numbers/inbound.py:inbound_receive": "carrier inbound: idempotent by carrier id; the tenant is not known yet",
    "numbers/inbound.py:_stored": "carrier inbound: a repeat by carrier id or dedupe key; the tenant is not known yet",
    # The shared number inventory, its sweeps and usage jobs.
    "numbers/services.py:_number_move": "the shared inventory's history: returns have no tenant, sweeps write for many",
    "numbers/services.py:leases_release_expired": "the lease sweep, over every tenant",
    "numbers/services.py:_leases_expire": "the lease sweep's set-based batch, over every tenant",
    "numbers/services.py:_leases_notify_expiring": "the sweep's expiring notices, over every tenant",
    "numbers/services.py:_usage_pending": "the daily usage job, over every tenant's holdings",
    "numbers/services.py:phone_number_upsert": "inventory import: a number's history before any tenant holds it",
    "numbers/services.py:number_force_release": "an account manager releases a number: whichever tenant holds it",
    "numbers/usage.py:usage_add": "usage rows of many tenants at once (sweeps, the daily job)",
    "numbers/pools.py:pool_members_drop": "holdings end in sweeps for many tenants at once; a retired number leaves all",
    "smsportal/api/idempotency.py:idempotency_records_purge": "the hourly purge, over every tenant",
    # Billing: the price lists are platform data (the default list has no tenant) held in each process.
    "billing/rating.py:_load": "every price list (the default and each tenant's) loaded once per process for rating",
    "billing/prices.py:_list_upsert": "staff import one price or number price list: a tenant's, or the default one "
                                      "of no tenant",
    "billing/services.py:_settle_portable": "settling a dispatch batch's or a sweep's messages, of any tenant (SQLite)",
    "billing/services.py:_balance_move_portable": "a balance move for the tenant its caller names (SQLite's path)",
    "billing/services.py:_volume_count_portable": "the month's volume of a settlement's captures, of any tenant (SQLite)",
    "billing/selectors.py:prices_effective": "the default price list (no tenant) beside the tenant's own, for /v1/pricing",
    "billing/services.py:_hold_portable": "the accept's hold for the tenant it names (SQLite's path)",
    "billing/services.py:_hold_refusal": "why the accept's hold was refused, for the tenant it names",
    "billing/services.py:_key_spend_count": "the accept's per-key daily spend, for the tenant and key it names",
    "billing/services.py:_spent_today_release": "a release gives back the day's spend of its message's tenant and key",
    "billing/selectors.py:ledger_releases_all": "admin's margins (platform report): every tenant's released messages",
    "billing/services.py:balance_charge": "the charge job debits the tenant its usage row names",
    "billing/services.py:balance_low_rearm": "the admin re-arms the low-balance alert of the balance it edits",
    "billing/services.py:number_price_upsert": "a number price of the default list (no tenant) or of the tenant given",
    "billing/alerts.py:_balance_low_raise": "the debit's tenant, by id (the accept's hold, the charge job, a credit)",
    "billing/alerts.py:_announce": "the alert of the debit's tenant, by id (the balance row just marked)",
    "billing/charges.py:number_charges_run": "the daily charge job, over every tenant's usage",
    "billing/charges.py:_charge": "the charge job records the charge of its usage row's tenant",
    "billing/charges.py:_collect": "the charge just recorded or locked, by id",
    "billing/charges.py:owed_charges_collect": "the charge job collects every tenant's owed charges",
    "billing/selectors.py:_number_prices_in_force": "the default number prices (no tenant) beside the tenant's own",
    "billing/selectors.py:tenant_currency": "a tenant's currency by the id the caller gives (charge job, numbers pages)",
    "numbers/selectors.py:usage_rows_before": "the daily charge job reads every tenant's usage rows",
    "numbers/selectors.py:usage_pending_from": "the daily charge job: every tenant's holdings not recorded yet",
    # The signed event outbox: emitters and workers act for the tenants their events name.
    "smsportal/events/api/views.py:WebhookDeliveryListView.get_queryset": "schema generation has no tenant: an empty queryset",
    "smsportal/events/api/views.py:WebhookEndpointListView.get_queryset": "schema generation has no tenant: an empty queryset",
    "smsportal/events/fanout.py:event_fanout_record": "the accept's own tenant, by the explicit tenant id it writes",
    "smsportal/events/fanout.py:event_fanout_expand": "the worker, by the id of a row any tenant's accept wrote",
    "smsportal/events/fanout.py:event_fanouts_expand_due": "the beat job, over every tenant's outbox",
    "smsportal/events/fanout.py:event_fanouts_expand_pending": "the dispatcher, over every tenant's pending fan-out rows",
    "smsportal/events/selectors.py:event_subscribers": "the endpoints of the tenants a batch of events names",
    "smsportal/events/selectors.py:event_subscribers_cached": "the emitting tenant's endpoints, by its id",
    "smsportal/events/services.py:_deliveries_insert": "a batch's events may belong to several tenants; each row has its own",
    # The webhook delivery worker: it holds delivery ids of any tenant.
    "smsportal/events/delivery.py:_claim_many_sql": "a batch task's deliveries (raw SQL claim) and their endpoints, by id, of any tenants",
    "smsportal/events/delivery.py:_claim": "the delivery task carries the delivery id, not a tenant",
    "smsportal/events/delivery.py:_claim_many": "a batch task's deliveries, by id, of any tenants",
    "smsportal/events/delivery.py:_endpoint_after": "the endpoint of the delivery being sent, by its id",
    "smsportal/events/delivery.py:_endpoint_disable": "the endpoint of the delivery being sent, by its id",
    "smsportal/events/delivery.py:_give_up": "the delivery being sent, by its id",
    "smsportal/events/delivery.py:_record": "the delivery and attempt being recorded, by their ids",
    "smsportal/events/delivery.py:_record_delivered": "the deliveries of a batch just sent, by their ids",
    "smsportal/events/delivery.py:callback_secret_for": "the signing secret of the delivery's own tenant, by its id",
    "smsportal/events/delivery.py:webhook_delivery_attempt": "the delivery task carries the delivery id, not a tenant",
    "smsportal/events/delivery.py:webhooks_retry_due": "the retry sweep, over every tenant's deliveries",
    # Benchmarks: a throw-away database, built and counted across tenants.
    "bench/leases.py:run": "a benchmark builds and counts rows of a throw-away database",
    "bench/worker_cpu.py:stages": "a benchmark reads the deliveries and statuses of its throw-away database",
}


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            yield relative, path.read_text()


class _Finder(ast.NodeVisitor):
    """Collects (qualified function, its source lines) for every use of an escape."""

    def __init__(self, source: str):
        self.lines = source.splitlines()
        self.stack: list[ast.AST] = []
        self.found: dict[str, str] = {}

    def _enter(self, node):
        self.stack.append(node)
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def _record(self):
        functions = [n for n in self.stack if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        outer = functions[0] if functions else None
        name = ".".join(n.name for n in self.stack) or "<module>"
        body = "\n".join(self.lines[outer.lineno - 1:outer.end_lineno]) if outer else ""
        self.found[name] = body

    def visit_Attribute(self, node):
        if node.attr in ESCAPES:
            self._record()
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in ESCAPES and isinstance(node.ctx, ast.Load):
            self._record()


def places() -> dict[str, str]:
    found = {}
    for relative, source in _modules():
        finder = _Finder(source)
        finder.visit(ast.parse(source))
        found |= {f"{relative}:{name}": body for name, body in finder.found.items()}
    return found


def test_every_cross_tenant_place_is_listed_with_its_reason():
    # given every use of `.unscoped` or all_tenants() in the project's modules
    found = places()
    # then each is listed here, and each listed place still uses one
    new = sorted(set(found) - set(UNSCOPED_PLACES))
    gone = sorted(set(UNSCOPED_PLACES) - set(found))
    assert not new, ("new cross-tenant places: use Model.objects under the active tenant, or add each to "
                     "UNSCOPED_PLACES in accounts/tests/test_unscoped_places.py with its reason:\n  " + "\n  ".join(new))
    assert not gone, "these places no longer go unscoped; take them out of UNSCOPED_PLACES:\n  " + "\n  ".join(gone)


def test_every_place_says_why_in_the_code():
    # given the listed places; then each function carries a `# unscoped: ...` comment
    silent = sorted(place for place, body in places().items() if "# unscoped:" not in body)
    assert not silent, "add a `# unscoped: <why>` comment where these go unscoped:\n  " + "\n  ".join(silent)


def test_the_scan_finds_an_escape_it_does_not_know(tmp_path):
    # given a module with a new unscoped read; then the finder reports its function
    source = "def f():\n    return Message.unscoped.all()\n\nclass A:\n    def g(self):\n        with all_tenants():\n            pass\n"
    finder = _Finder(source)
    finder.visit(ast.parse(source))
    assert set(finder.found) == {"f", "A.g"}
