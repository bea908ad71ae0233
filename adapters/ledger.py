"""The API ledger in Redis that every worker shares: the CRM's own daily figures and our calls.

`keys.api_budget(crm)` (a hash) holds what the CRM last said: `used` and `limit` of its daily
quota, `source` (HubSpot's `headers`, our own count against a configured limit `counted`, or
Salesforce's `sforce-limit-info`), `reported_at` (Unix seconds) and, for a quota that resets at
midnight, `period` (the day the figures belong to): a call on a new day starts from zero.

`keys.api_budget_calls(crm)` (a sorted set) counts our own calls a minute, for the rate
forecast and for when a rolling window frees calls: the member is the minute (Unix seconds //
60) and the score is `minute * 1_000_000 + calls`, so the set stays ordered by time (trimmed to
a day by score) while ZINCRBY counts. At most 1,441 members whatever the call rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from integration.store import keys
from integration.store.keys import text

DAY_SECONDS = 86_400
MINUTE_SECONDS = 60
# The score of a minute's bucket is minute * SCORE_BASE + its calls (never a million a minute).
SCORE_BASE = 1_000_000
# Figures older than this are dropped with their keys (a day of buckets, a day and a bit).
KEEP_SECONDS = 2 * DAY_SECONDS

# One round trip a call: roll the period over, take the CRM's figures or count the call, and
# count it in its minute. KEYS: ledger, calls. ARGV: period ('' for a rolling window), now,
# minute, kind (report|count|spent), used, limit ('' unknown), source, bucket score, cutoff
# score, keep seconds, calls to count (0 or 1).
RECORD = """
local ledger, calls = KEYS[1], KEYS[2]
local period = ARGV[1]
if period ~= '' and redis.call('HGET', ledger, 'period') ~= period then
  redis.call('DEL', ledger)
  redis.call('HSET', ledger, 'period', period, 'used', 0)
end
local kind = ARGV[4]
if kind == 'report' then
  redis.call('HSET', ledger, 'used', ARGV[5], 'limit', ARGV[6], 'source', ARGV[7],
    'reported_at', ARGV[2])
elseif kind == 'spent' then
  local limit = redis.call('HGET', ledger, 'limit')
  if limit then
    redis.call('HSET', ledger, 'used', limit, 'reported_at', ARGV[2])
  end
elseif tonumber(ARGV[11]) > 0 then
  redis.call('HINCRBY', ledger, 'used', 1)
  if ARGV[6] ~= '' and redis.call('HGET', ledger, 'source') ~= 'headers' then
    redis.call('HSET', ledger, 'limit', ARGV[6], 'source', ARGV[7], 'reported_at', ARGV[2])
  end
end
redis.call('EXPIRE', ledger, ARGV[10])
if tonumber(ARGV[11]) > 0 then
  redis.call('ZADD', calls, 'NX', ARGV[8], ARGV[3])
  redis.call('ZINCRBY', calls, 1, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', '(' .. ARGV[9])
  redis.call('EXPIRE', calls, ARGV[10])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Figures:
    """The ledger as stored: what the CRM (or our count) last said about its quota."""

    used: int
    limit: int | None
    source: str
    period: str
    reported_at: float | None


@dataclass(frozen=True, slots=True)
class Ledger:
    """One CRM's ledger. `redis` is the queue Redis, as for the rate limit and the pause."""

    redis: Redis
    crm: str

    def report(self, used: int, limit: int, source: str, now: float, period: str = "") -> None:
        """The CRM's own figures, given with one call of ours."""
        self._record("report", now, period, used, limit, source)

    def count(
        self, now: float, period: str = "", limit: int | None = None, source: str = "counted"
    ) -> None:
        """One call of ours without figures: counted, against `limit` when nothing better is
        known for the period (HubSpot's search and OAuth answers carry no daily headers)."""
        self._record("count", now, period, 0, limit, source)

    def spent(self, now: float, period: str = "") -> None:
        """The CRM refused for its daily limit: the quota is used up, whatever we counted."""
        self._record("spent", now, period, 0, None, "", calls=0)

    def figures(self) -> Figures | None:
        raw = {text(k): text(v) for k, v in self.redis.hgetall(keys.api_budget(self.crm)).items()}
        if "used" not in raw:
            return None
        return Figures(
            used=int(raw["used"]),
            limit=int(raw["limit"]) if raw.get("limit") else None,
            source=raw.get("source", ""),
            period=raw.get("period", ""),
            reported_at=float(raw["reported_at"]) if raw.get("reported_at") else None,
        )

    def calls(self, since: float) -> list[tuple[int, int]]:
        """Our calls a minute since `since` (Unix seconds): (minute start, calls), oldest first."""
        first = int(since // MINUTE_SECONDS)
        found: list[tuple[bytes, float]] = self.redis.zrangebyscore(  # type: ignore[assignment]  # withscores: (member, score) pairs
            keys.api_budget_calls(self.crm), first * SCORE_BASE, "+inf", withscores=True
        )
        return [_bucket(member, score) for member, score in found]

    def _record(
        self,
        kind: str,
        now: float,
        period: str,
        used: int,
        limit: int | None,
        source: str,
        calls: int = 1,
    ) -> None:
        minute = int(now // MINUTE_SECONDS)
        cutoff = int((now - DAY_SECONDS) // MINUTE_SECONDS)
        args: Sequence[str | int | float] = (
            period,
            repr(now),
            minute,
            kind,
            used,
            "" if limit is None else limit,
            source,
            minute * SCORE_BASE,
            cutoff * SCORE_BASE,
            KEEP_SECONDS,
            calls,
        )
        self.redis.eval(
            RECORD, 2, keys.api_budget(self.crm), keys.api_budget_calls(self.crm), *args
        )


def _bucket(member: bytes | str, score: float) -> tuple[int, int]:
    minute = int(text(member))
    return minute * MINUTE_SECONDS, int(score) - minute * SCORE_BASE
