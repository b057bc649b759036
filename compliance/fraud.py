"""Fraud and SMS-pumping velocity: counting a request's messages against the rules (FraudRule rows), with evidence.

Each rule counts messages per window on one dimension (the tenant, an API key, a destination prefix, a country)
and compares the window with that subject's own baseline: an exponentially weighted moving average of its
earlier windows (alpha FRAUD_EWMA_ALPHA), so a prefix a tenant always sends to is not a burst, and a prefix it
never sent to is one after `min_count`. A `sequential` rule also wants most numbers of the window next to another
one of it (a pumping run through a number range).

One request is one script: every (rule, subject) of every message of the batch, and the OTP dedupe markers, in one
Lua script (`velocity_plan`). A send runs it as a rider of the rate limits' own script call (smsportal/api/
ratelimit.py, `Rider`): no round trip of its own, and only when every rate limit allowed the request, so a 429
counts in no velocity window. A quote, and a request counted already, run it on their own (`velocity_run`) with
`peek`: nothing is counted or marked. Without Redis (REDIS_URL unset, or Redis down) the same arithmetic runs on
this process's own state: protection per process rather than none.

The rules and the account managers' allowances are held in process memory for COMPLIANCE_CACHE_SECONDS and
cleared on change (compliance/signals.py): the common case asks the database nothing. A firing writes a
FraudSignal row, at most one per rule, subject and window.
"""
from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from compliance.models import FraudAllowance, FraudRule, FraudSignal
from smsportal.api.ratelimit import Rider, key_prefix, redis_script_run

# KEYS: a state hash per (rule, subject), then a marker per OTP dedupe. ARGV: now (s), peek (0/1), alpha, the
# number of entries, the number n of the request's numbers, then those n numbers (each once, whatever the rules);
# per entry: window, min_count, multiplier, floor, ratio, cost, members m, then m positions (1-based) in the
# numbers, or m = -1 for all of them (no positions: the common case); then the markers' lifetime (ms) and per
# marker its value. A sequential rule (ratio > 0) looks for each number's neighbours (number - 1, number + 1).
# A hash holds b (the window's number), c (its count), e (the baseline: EWMA of finished windows), a (numbers next
# to another of the window), f (a signal was recorded in this window). Returns per entry {fired, first, count,
# distinct, baseline * 1000, adjacent}, then per marker the value found ('' when this request set it).
_VELOCITY_LUA = """
local now, peek, alpha, entries = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local total = tonumber(ARGV[5])
local every = {}
for j = 1, total do every[j] = ARGV[5 + j] end
local pos, out = 6 + total, {}
for i = 1, entries do
  local key = KEYS[i]
  local window, min_count, mult = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  local floor, ratio, cost, m = tonumber(ARGV[pos + 3]), tonumber(ARGV[pos + 4]), tonumber(ARGV[pos + 5]), tonumber(ARGV[pos + 6])
  pos = pos + 7
  local bucket = math.floor(now / window)
  local st = redis.call('HMGET', key, 'b', 'c', 'e', 'a', 'f')
  local b, c, e, a, f = tonumber(st[1]), tonumber(st[2]) or 0, tonumber(st[3]) or 0, tonumber(st[4]) or 0, tonumber(st[5]) or 0
  if b ~= bucket then
    if b then
      e = alpha * c + (1 - alpha) * e
      local gap = math.min(bucket - b - 1, 1000)
      if gap > 0 then e = e * (1 - alpha) ^ gap end
    end
    c, a, f = 0, 0, 0
  end
  local ukey, skey = key .. ':u:' .. bucket, key .. ':s:' .. bucket
  local numbers, here, adjacent = every, {}, 0
  if m >= 0 then
    numbers = {}
    for j = 1, m do numbers[j] = every[tonumber(ARGV[pos + j - 1])] end
    pos = pos + m
  else
    m = total
  end
  if ratio > 0 then
    for j = 1, m do
      local n = numbers[j]
      local digits = tonumber(string.sub(n, 2))
      local lo, hi = string.format('+%.0f', digits - 1), string.format('+%.0f', digits + 1)
      if here[lo] or here[hi] or redis.call('SISMEMBER', skey, lo) == 1 or redis.call('SISMEMBER', skey, hi) == 1 then
        adjacent = adjacent + 1
      end
      here[n] = true
    end
  end
  -- A window's keys get their lifetimes once, when the window opens (Lua runs alone: the first write of it).
  local fresh = b ~= bucket
  if not peek and m > 0 then
    redis.call('PFADD', ukey, unpack(numbers))
    if fresh then redis.call('EXPIRE', ukey, window * 2) end
    if ratio > 0 then
      redis.call('SADD', skey, unpack(numbers))
      if fresh then redis.call('EXPIRE', skey, window * 2) end
    end
  end
  c, a = c + cost, a + adjacent
  local fired = c >= min_count and c > mult * math.max(e, floor) and (ratio == 0 or a >= ratio * c)
  -- The distinct count is evidence only: counted when the rule fires.
  local distinct = 0
  if fired then
    distinct = redis.call('PFCOUNT', ukey) + (peek and m or 0)
    if distinct > c then distinct = c end
  end
  local first = 0
  if fired and f == 0 and not peek then f, first = 1, 1 end
  if not peek then
    redis.call('HSET', key, 'b', bucket, 'c', c, 'e', string.format('%.6f', e), 'a', a, 'f', f)
    if fresh then redis.call('EXPIRE', key, math.max(window * 100, 86400)) end
  end
  out[i] = {fired and 1 or 0, first, c, distinct, math.floor(e * 1000 + 0.5), a}
end
local ttl = tonumber(ARGV[pos])
pos = pos + 1
for k = entries + 1, #KEYS do
  local value = ARGV[pos]
  pos = pos + 1
  if peek then
    out[k] = redis.call('GET', KEYS[k]) or ''
  elseif redis.call('SET', KEYS[k], value, 'NX', 'PX', ttl) then
    out[k] = ''
  else
    out[k] = redis.call('GET', KEYS[k]) or ''
  end
end
return out
"""


@dataclass(frozen=True)
class RuleData:
    """A FraudRule as plain values, held in the process cache."""

    id: int
    code: str
    kind: str
    dimension: str
    mode: str
    window: int
    min_count: int
    multiplier: float
    floor: int
    prefix_digits: int
    ratio: float
    countries: frozenset[str]
    message_types: frozenset[str]


@dataclass(frozen=True)
class Outgoing:
    """What a rule needs of one message: who, to where."""

    to: str
    country: str
    message_type: str


@dataclass
class Entry:
    """One (rule, subject) of a request, and the messages (by position) it counts."""

    rule: RuleData
    subject: str
    positions: list[int] = field(default_factory=list)
    fired: bool = False
    first: bool = False
    count: int = 0
    distinct: int = 0
    baseline: float = 0.0
    adjacent: int = 0

    @property
    def evidence(self) -> str:
        per_minute = self.baseline * 60 / self.rule.window
        shown = f"{per_minute:.0f}" if per_minute >= 1 or per_minute == 0 else f"{per_minute:.2f}"
        label = {"tenant": "your account", "api_key": "this API key"}.get(self.rule.dimension, self.subject)
        text = (f"{label}: {self.count} messages in {self.rule.window} s to {self.distinct} distinct numbers, "
                f"baseline {shown}/min")
        if self.rule.kind == FraudRule.Kind.SEQUENTIAL:
            text += f", {self.adjacent} next to another number of the run"
        return text

    @property
    def figures(self) -> dict:
        return {"count": self.count, "distinct": self.distinct, "baseline": round(self.baseline, 3),
                "window_seconds": self.rule.window, "adjacent": self.adjacent}


@dataclass(frozen=True)
class Outcome:
    """A request's answer: per message position, the entry that blocks it (if any); per marker, what was found."""

    blocked: dict[int, Entry]
    entries: list[Entry]
    markers: list[str]


# --- rules and allowances, per process ---------------------------------------------------------------

_cache: tuple[float, list[RuleData], frozenset[tuple[int, int, str]]] | None = None
_lock = threading.Lock()


def rules_cache_clear() -> None:
    global _cache
    _cache = None


def _rules() -> tuple[list[RuleData], frozenset[tuple[int, int, str]]]:
    global _cache
    cached = _cache
    if cached is None or time.monotonic() - cached[0] > settings.COMPLIANCE_CACHE_SECONDS:
        with _lock:
            rules = [_rule_data(rule) for rule in FraudRule.objects.exclude(mode=FraudRule.Mode.OFF)]
            now = timezone.now()
            # unscoped: every tenant's allowances, loaded at once with the rules for the accept pipeline's check
            allowed = frozenset((a.tenant_id, a.rule_id, a.subject) for a in FraudAllowance.unscoped.all()
                                if a.expires_at is None or a.expires_at > now)
            cached = _cache = (time.monotonic(), rules, allowed)
    return cached[1], cached[2]


def _rule_data(rule: FraudRule) -> RuleData:
    return RuleData(id=rule.pk, code=rule.code, kind=rule.kind, dimension=rule.dimension, mode=rule.mode,
                    window=rule.window_seconds, min_count=rule.min_count, multiplier=float(rule.baseline_multiplier),
                    floor=rule.baseline_floor, prefix_digits=rule.prefix_digits,
                    ratio=float(rule.sequential_ratio) if rule.kind == FraudRule.Kind.SEQUENTIAL else 0.0,
                    countries=frozenset(c.upper() for c in rule.countries or ()),
                    message_types=frozenset(rule.message_types or ()))


def _subject(rule: RuleData, message: Outgoing, *, tenant_id: int, api_key_id: int | None) -> str | None:
    if rule.countries and message.country not in rule.countries:
        return None
    if rule.message_types and message.message_type not in rule.message_types:
        return None
    match rule.dimension:
        case FraudRule.Dimension.TENANT:
            return f"tenant:{tenant_id}"
        case FraudRule.Dimension.API_KEY:
            return None if api_key_id is None else f"key:{api_key_id}"
        case FraudRule.Dimension.COUNTRY:
            return message.country or None
        case _:
            return message.to[:1 + rule.prefix_digits]


def dedupe_key(*, tenant_id: int, to: str, text: str, prefix: str | None = None) -> str:
    """The OTP dedupe marker of the same text to the same number from the same tenant (the text is not kept).
    `prefix`: key_prefix(), when the caller asks it once for many."""
    digest = hashlib.sha256(f"{to}\n{text}".encode()).hexdigest()[:32]
    return f"{prefix or key_prefix()}:otpdedupe:{{t{tenant_id}}}:{digest}"


@dataclass
class Plan:
    """A request's velocity call, prepared (velocity_plan): its (rule, subject) entries and the script's input.
    `rider` runs it inside the rate limiter's call (step 3 of accept); `velocity_settle` reads the answer."""

    tenant_id: int
    entries: list[Entry]
    keys: list[str]
    args: list
    peek: bool

    @property
    def rider(self) -> Rider | None:
        """The call as a rider of the rate limits' script, or None when it has nothing to count or mark."""
        return Rider(source=_VELOCITY_LUA, keys=self.keys, args=self.args, local=_local_run) if self.keys else None


def velocity_plan(*, tenant_id: int, api_key_id: int | None, messages: Sequence[Outgoing],
                  markers: Sequence[tuple[str, str]] = (), peek: bool = False, counted: bool = False) -> Plan:
    """Prepare counting `messages` (a request) against every rule, and setting the OTP dedupe `markers` ((key,
    value): set when absent, for OTP_DEDUPE_SECONDS). With `peek` (a quote) nothing will be counted, marked or
    recorded; with `counted` (this request was counted already) neither, and the windows are read as they stand."""
    rules, allowed = _rules()
    entries: dict[tuple[int, str], Entry] = {}
    for position, message in enumerate(messages):
        for rule in rules:
            subject = _subject(rule, message, tenant_id=tenant_id, api_key_id=api_key_id)
            if subject is None or (tenant_id, rule.id, subject) in allowed:
                continue
            entry = entries.setdefault((rule.id, subject), Entry(rule=rule, subject=subject))
            entry.positions.append(position)
    listed = list(entries.values())
    if not listed and not markers:
        return Plan(tenant_id=tenant_id, entries=[], keys=[], args=[], peek=True)
    peek = peek or counted
    keys, args = _script_input(tenant_id, listed, markers, peek, counted, [m.to for m in messages])
    return Plan(tenant_id=tenant_id, entries=listed, keys=keys, args=args, peek=peek)


def velocity_settle(plan: Plan, answer: list | None) -> Outcome:
    """The outcome of a planned call from the script's `answer` (None: nothing was asked, or it was not run).

    A block-mode rule that fires blocks the messages it counted, unless an account manager allowed the subject.
    A firing's first time in its window records a FraudSignal (not when peeking)."""
    if not plan.keys or answer is None:
        return Outcome(blocked={}, entries=[], markers=[])
    listed = plan.entries
    found = [value.decode() if isinstance(value, bytes) else value for value in answer[len(listed):]]
    blocked: dict[int, Entry] = {}
    for entry, (fired, first, count, distinct, baseline, adjacent) in zip(listed, answer, strict=False):
        entry.fired, entry.first, entry.count, entry.distinct = bool(fired), bool(first), count, distinct
        # The baseline the rule compared with: the subject's own, or the rule's floor when that is higher.
        entry.baseline, entry.adjacent = max(baseline / 1000, entry.rule.floor), adjacent
        if entry.fired and entry.rule.mode == FraudRule.Mode.BLOCK:
            for position in entry.positions:
                blocked.setdefault(position, entry)
    if not plan.peek:
        _signals_record(plan.tenant_id, [entry for entry in listed if entry.first])
    return Outcome(blocked=blocked, entries=listed, markers=found)


def velocity_run(plan: Plan) -> Outcome:
    """Run a planned call on its own (a quote, or a request counted already): one Redis round trip, or this
    process's counters without Redis."""
    if not plan.keys:
        return velocity_settle(plan, None)
    answer = redis_script_run(_VELOCITY_LUA, keys=plan.keys, args=plan.args)
    return velocity_settle(plan, _local_run(plan.keys, plan.args) if answer is None else answer)


def _neighbours(number: str) -> tuple[str, str]:
    digits = int(number[1:]) if number[1:].isdigit() else 0
    return f"+{digits - 1}", f"+{digits + 1}"


def _script_input(tenant_id: int, entries: Sequence[Entry], markers: Sequence[tuple[str, str]], peek: bool,
                  counted: bool, numbers: Sequence[str]):
    """The script's KEYS and ARGV (see _VELOCITY_LUA): the request's `numbers` once, an entry that counts every
    message (the tenant's, a country's, one prefix's in a batch to one prefix) without positions."""
    prefix, total = f"{key_prefix()}:fraud:{{t{tenant_id}}}:", len(numbers)
    keys = [f"{prefix}{entry.rule.code}:{entry.subject}" for entry in entries]
    args = [f"{time.time():.6f}", "1" if peek else "0", settings.FRAUD_EWMA_ALPHA, len(entries),
            0 if counted else total, *(() if counted else numbers)]
    for entry in entries:
        rule = entry.rule
        if counted:  # the windows hold this request already: read them, add nothing
            args += [rule.window, rule.min_count, rule.multiplier, rule.floor, rule.ratio, 0, 0]
        elif len(entry.positions) == total:
            args += [rule.window, rule.min_count, rule.multiplier, rule.floor, rule.ratio, total, -1]
        else:
            args += [rule.window, rule.min_count, rule.multiplier, rule.floor, rule.ratio, len(entry.positions),
                     len(entry.positions), *(position + 1 for position in entry.positions)]
    args.append(math.ceil(settings.OTP_DEDUPE_SECONDS * 1000))
    for key, value in markers:
        keys.append(key)
        args.append(value)
    return keys, args


def markers_release(keys: Sequence[str]) -> None:
    """Forget dedupe markers this request set for messages it did not store (refused after the check), so a
    retry of the same code is sent, not answered with a message that does not exist."""
    if not keys:
        return
    if redis_script_run("for _, k in ipairs(KEYS) do redis.call('DEL', k) end return 0", keys=keys, args=[]) is None:
        with _local_lock:
            for key in keys:
                _local_markers.pop(key, None)


def _signals_record(tenant_id: int, entries: Sequence[Entry]) -> None:
    if not entries:
        return
    FraudSignal.objects.bulk_create([
        FraudSignal(tenant_id=tenant_id, rule_id=entry.rule.id, dimension=entry.rule.dimension, subject=entry.subject,
                    action=(FraudSignal.Action.BLOCKED if entry.rule.mode == FraudRule.Mode.BLOCK
                            else FraudSignal.Action.SHADOW),
                    evidence=entry.evidence[:300], figures=entry.figures)
        for entry in entries])


# --- in-process (no Redis) -------------------------------------------------------------------------

_local_state: dict[str, dict] = {}
_local_sets: dict[str, tuple[int, set[str]]] = {}  # key -> (window number, numbers): distinct and adjacency
_local_markers: dict[str, tuple[float, str]] = {}  # key -> (until, value)
_local_lock = threading.Lock()


def local_state_clear() -> None:
    """Forget the in-process counters and markers (tests)."""
    with _local_lock:
        _local_state.clear()
        _local_sets.clear()
        _local_markers.clear()


def _local_run(keys: list[str], args: list) -> list:
    """The Lua script's arithmetic on this process's state (exact distinct counts instead of HyperLogLog)."""
    with _local_lock:
        now, peek, alpha, count, total = float(args[0]), args[1] == "1", float(args[2]), int(args[3]), int(args[4])
        every = args[5:5 + total]
        pos, out = 5 + total, []
        for i in range(count):
            window, min_count, mult, floor, ratio, cost, m = args[pos:pos + 7]
            pos += 7
            if m >= 0:
                numbers = [every[int(index) - 1] for index in args[pos:pos + m]]
                pos += m
            else:
                numbers = every
            triples = [(number, *(_neighbours(number) if ratio > 0 else ("", ""))) for number in numbers]
            out.append(_local_entry(keys[i], now, peek, alpha, window, min_count, mult, floor, ratio, cost, triples))
        ttl = args[pos]
        pos += 1
        for key in keys[count:]:
            value = args[pos]
            pos += 1
            until, existing = _local_markers.get(key, (0.0, ""))
            if until > now:
                out.append(existing)
            else:
                if not peek:
                    _local_markers[key] = (now + ttl / 1000, value)
                out.append("")
        return out


def _local_entry(key, now, peek, alpha, window, min_count, mult, floor, ratio, cost, triples) -> list:
    bucket = math.floor(now / window)
    state = dict(_local_state.get(key, {}))
    c, e, a, f = state.get("c", 0), state.get("e", 0.0), state.get("a", 0), state.get("f", 0)
    if state.get("b") != bucket:
        if "b" in state:
            e = alpha * c + (1 - alpha) * e
            e *= (1 - alpha) ** max(0, min(bucket - state["b"] - 1, 1000))
        c, a, f = 0, 0, 0
    held_bucket, held = _local_sets.get(key, (bucket, set()))
    seen = set(held) if held_bucket == bucket else set()
    adjacent = 0
    for number, lo, hi in triples:
        if ratio > 0 and (lo in seen or hi in seen):
            adjacent += 1
        seen.add(number)
    c, a = c + cost, a + adjacent
    fired = c >= min_count and c > mult * max(e, floor) and (ratio == 0 or a >= ratio * c)
    distinct = min(len(seen), c) if fired else 0  # evidence only, as in the script
    first = 0
    if fired and f == 0 and not peek:
        f, first = 1, 1
    if not peek:
        _local_state[key] = {"b": bucket, "c": c, "e": e, "a": a, "f": f}
        _local_sets[key] = (bucket, seen)
    return [int(fired), first, c, distinct, int(e * 1000 + 0.5), a]
