"""Every Redis key the service writes, built from one prefix.

Per-account keys carry a hash tag (`{acct:ID}`) so a Redis Cluster keeps one account's keys
together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

PREFIX = "ci"


def account_tag(account_id: str) -> str:
    return f"{{acct:{account_id}}}"


def account_prefix(account_id: str) -> str:
    return f"{PREFIX}:{account_tag(account_id)}:"


DAILY, DAY_USERS, META = "daily:", "users:", "meta"
USER_LAST_SEEN, ACTIVE_30D = "user_last_seen", "active_30d"
OPEN_TICKETS, CLOSED_TICKETS = "open_tickets", "closed_tickets"


def account_fold_keys(account_id: str, rings: Sequence[str], user_days: Sequence[int]) -> list[str]:
    """Every key one account's fold writes, in the order fold_account.lua reads its KEYS: the
    meta hash, last-seen, 30-day snapshots, open and closed tickets, message marks, folded
    entries, then the rings of `rings`, then the user records of `user_days`."""
    prefix = account_prefix(account_id)
    fixed = (META, USER_LAST_SEEN, ACTIVE_30D, OPEN_TICKETS, CLOSED_TICKETS, "marks", "folded")
    return [
        *(prefix + suffix for suffix in fixed),
        *(f"{prefix}{DAILY}{metric}" for metric in rings),
        *(f"{prefix}{DAY_USERS}{day}" for day in user_days),
    ]


# The hash tag of the ingest stream and what accept.lua writes with it (delivery marks, the
# layout copy): one slot, so each accept is one script on one node of a Redis Cluster.
INGEST_TAG = "{ingest}"


def delivery_seen(source: str, delivery_id: str) -> str:
    """Set when a webhook delivery was taken, so a re-delivery is dropped."""
    return f"{PREFIX}:{INGEST_TAG}:delivery:{source}:{delivery_id}"


def untagged_delivery_seen_match() -> str:
    """A glob of the delivery marks' names before the {ingest} tag (until 2026-12)."""
    return f"{PREFIX}:delivery:*"


def tagged_delivery_seen(untagged: str) -> str:
    """The name now of a delivery mark written under its name before the {ingest} tag."""
    return f"{PREFIX}:{INGEST_TAG}:{untagged.removeprefix(PREFIX + ':')}"


def message_marks(account_id: str) -> str:
    """Sorted set: the events of this account whose usage is stored (see message_mark), scored
    by when; the same event re-sent in another delivery is dropped. Trimmed by age in the fold
    (fold_account.lua), so it holds a day or so of an account's marks."""
    return account_fold_keys(account_id, (), ())[5]


@lru_cache(maxsize=4096)
def message_mark(source: str, message_id: str) -> str:
    """An event's member in message_marks (a Segment messageId, a usage `event_id`): hashed to
    80 bits, as ids run to 100 characters and every event with an id keeps one."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=10).hexdigest()
    return f"{source}:{digest}"


def folded_entries(account_id: str) -> str:
    """Sorted set: the ingest stream entries already folded into this account (entry id,
    scored by its milliseconds), so an entry folded again after its consumer died between
    folding and acknowledging changes nothing (integration/store/folding.py)."""
    return account_fold_keys(account_id, (), ())[6]


def daily_metric(account_id: str, metric: str) -> str:
    """A string of u16 counters, one per day in a ring (see rollups.RING_DAYS)."""
    return f"{account_prefix(account_id)}{DAILY}{metric}"


def day_users(account_id: str, day_number: int) -> str:
    """HyperLogLog of the users seen on one day; short-lived, it only makes the count distinct."""
    return f"{account_prefix(account_id)}{DAY_USERS}{day_number}"


def account_meta(account_id: str) -> str:
    """Hash: first and last day seen, seats, last activity."""
    return account_prefix(account_id) + META


def user_last_seen(account_id: str) -> str:
    """Sorted set: user id scored by the last time it was active (license utilization)."""
    return account_prefix(account_id) + USER_LAST_SEEN


def active_30d_snapshots(account_id: str) -> str:
    """A small ring of u32, one per day: (day number mod 65536) << 16 | users active in the 30
    days up to that day, written once a day, so utilization can be compared with a month ago."""
    return account_prefix(account_id) + ACTIVE_30D


def ticket_member(ticket_id: str) -> str:
    """A support ticket as a member of open_tickets / closed_tickets: hashed, ids can be long."""
    return hashlib.blake2b(ticket_id.encode(), digest_size=8).hexdigest()


def open_tickets(account_id: str) -> str:
    """Sorted set: tickets still open (see ticket_member) scored by when they opened."""
    return account_prefix(account_id) + OPEN_TICKETS


def ticket_closings_seen() -> str:
    """When the first closing event arrived: tickets opened before it cannot be told to be
    open still (their closings were never sent), so long-open counts only later ones."""
    return f"{PREFIX}:{COORDINATION_TAG}:tickets:closings_seen"


def closed_tickets(account_id: str) -> str:
    """Sorted set: closed tickets (see ticket_member) scored by when they last closed."""
    return account_prefix(account_id) + CLOSED_TICKETS


def people_signals(account_id: str) -> str:
    """Hash: people-signal dedupe id -> the signal (JSON); one entry however often it is sent."""
    return f"{PREFIX}:{account_tag(account_id)}:people"


def assessment(account_id: str) -> str:
    """The last risk assessment written for the account (JSON)."""
    return f"{PREFIX}:{account_tag(account_id)}:assessment"


def crm_fields(account_id: str) -> str:
    """The field values the CRM last accepted for the account (JSON), so only changes are sent."""
    return f"{PREFIX}:{account_tag(account_id)}:crm_fields"


def action_done(idempotency_key: str) -> str:
    """Claimed before an action runs, then holds the CRM id it produced.

    The key is hashed because idempotency keys may hold a person's email.
    """
    return f"{PREFIX}:action:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"


def crm_task(crm: str, task_crm_id: str) -> str:
    """Hash for a task we created: which account and playbook it belongs to."""
    return f"{PREFIX}:crm_task:{crm}:{task_crm_id}"


def open_tasks(account_id: str) -> str:
    """Set of CRM ids of our tasks on this account that are not completed yet."""
    return f"{PREFIX}:{account_tag(account_id)}:open_tasks"


def outcomes(account_id: str) -> str:
    """List of outcomes (JSON), newest first, bounded: completed playbook tasks and renewals."""
    return f"{PREFIX}:{account_tag(account_id)}:outcomes"


def history(account_id: str) -> str:
    """Stream: the account's audit trail (signal, assessment, step, action, outcome), capped
    by config `history` (integration/store/history.py)."""
    return f"{PREFIX}:{account_tag(account_id)}:history"


def signal_trail(account_id: str) -> str:
    """Stream: the account's folded usage and Segment signals, the audit trail's busiest
    entries, capped apart (config `history.keep_signals`) so they never push out the rest."""
    return f"{PREFIX}:{account_tag(account_id)}:history:signals"


def renewal_seen(account_id: str) -> str:
    """String: the account's renewal status field (account_facts.renewal_status) as the last
    evaluation saw it, so a change to renewed or churned is an outcome once."""
    return f"{PREFIX}:{account_tag(account_id)}:renewal_seen"


def control_groups() -> str:
    """Hash: per playbook, runs started and how many of them are control runs, so a control
    group never grows past its share (integration/store/control_groups.py)."""
    return f"{PREFIX}:control_groups"


def api_budget(crm: str) -> str:
    """Hash: the CRM's daily API figures as it last reported them, shared by every worker
    (adapters/budget.py)."""
    return f"{PREFIX}:api_budget:{crm}"


def api_budget_calls(crm: str) -> str:
    """Sorted set: our own calls to the CRM in the last day, by time, for the rate forecast."""
    return f"{PREFIX}:api_budget_calls:{crm}"


def change_seen(ordering_key: str) -> str:
    """When the newest CRM change to this thing happened, so an older redelivery changes nothing."""
    return f"{PREFIX}:change_seen:{hashlib.sha256(ordering_key.encode()).hexdigest()[:40]}"


def crm_snapshot(crm: str, record_id: str) -> str:
    """Hash: the last field values a CRM sent for a record (Salesforce sends no old values)."""
    return f"{PREFIX}:crm_snapshot:{crm}:{record_id}"


def ingest_stream() -> str:
    """Stream of accepted usage and Segment deliveries, each entry a validated body waiting to
    be folded into the rollups (integration/store/ingest_stream.py)."""
    return f"{PREFIX}:{INGEST_TAG}:stream"


# The consumer group that folds the ingest stream (`integration fold`).
INGEST_GROUP = "fold"


def ingest_dead_letters() -> str:
    """Stream of ingest entries the fold could not read (a body this release cannot parse):
    kept for an admin, never folded."""
    return f"{PREFIX}:{INGEST_TAG}:dead"


def ingest_layout() -> str:
    """A copy of rollups_layout beside the stream, so accept.lua checks it in its own slot
    (integration/store/ingest_stream.py copies it once the rollups are in this layout)."""
    return f"{PREFIX}:{INGEST_TAG}:layout"


def untagged_ingest_names() -> dict[str, str]:
    """The ingest streams' and the Segment user links' names before the {ingest} tag (until
    2026-12), each with its name now (integration/store/renames.py)."""
    return {
        f"{PREFIX}:ingest": ingest_stream(),
        f"{PREFIX}:ingest:dead": ingest_dead_letters(),
        untagged_segment_user_groups(): segment_user_groups(),
    }


def segment_claim(message_id: str) -> str:
    """Set (NX) by the fold that takes a Segment messageId, to the stream entry it came in:
    a messageId counts once across all accounts (integration/store/ingest_stream.py
    `claim_messages`). Lives MESSAGE_DEDUPE_SECONDS."""
    return f"{PREFIX}:{INGEST_TAG}:msg:{message_mark('segment', message_id)}"


# A segment_claim's value for a mark the release before the {ingest} claims set: taken, by no
# entry of this stream (renames.adopt_message_marks).
CLAIMED_BY_EARLIER_RELEASE = "earlier-release"


def untagged_segment_mark_match() -> str:
    """A glob of the global Segment message marks before the {ingest} claims (until 2026-12)."""
    return f"{PREFIX}:msg:segment:*"


def tagged_segment_mark(untagged: str) -> str:
    """The segment_claim name of a global Segment message mark of the release before."""
    return f"{PREFIX}:{INGEST_TAG}:{untagged.removeprefix(PREFIX + ':')}"


# The hash tag of the evaluation's hand-off keys: the scripts of integration/store/waiting.py
# touch several of them at once, and on a Redis Cluster one script keeps to one slot.
COORDINATION_TAG = "{ci}"


def dirty_accounts() -> str:
    """Sorted set: accounts with new usage since their last evaluation, scored by when their
    rollups last changed (0: nothing new to settle, as the daily run and a retry add them)."""
    return f"{PREFIX}:{COORDINATION_TAG}:dirty_accounts:by_change"


def legacy_dirty_accounts() -> str:
    """The plain set of dirty accounts releases before 2026-12 kept; the sweep moves it over."""
    return f"{PREFIX}:dirty_accounts"


def evaluation_ran() -> str:
    """When the dirty-account evaluation last took accounts (Unix seconds): it runs at most
    once per `evaluation.interval_seconds`."""
    return f"{PREFIX}:{COORDINATION_TAG}:evaluation:last_run"


def watermarks() -> str:
    """Hash: source (usage, segment, import) -> day number of the last complete day it
    delivered for any account (integration/store/freshness.py)."""
    return f"{PREFIX}:{COORDINATION_TAG}:watermarks"


def processing_accounts() -> str:
    """Sorted set: accounts an evaluation job took, scored by when; cleared when it finishes."""
    return f"{PREFIX}:{COORDINATION_TAG}:processing_accounts"


def processing_holders() -> str:
    """Hash: account -> the batch (holder id) that took it, while that batch holds it."""
    return f"{PREFIX}:{COORDINATION_TAG}:processing_holders"


def batch_leases() -> str:
    """Sorted set: batch (holder id) -> when its lease runs out (Unix seconds), renewed while
    the worker holding it lives (integration/jobs/holding.py)."""
    return f"{PREFIX}:{COORDINATION_TAG}:batch_leases"


def known_accounts() -> str:
    """Set of every account we have heard of, for the daily evaluation of all of them."""
    return f"{PREFIX}:{COORDINATION_TAG}:known_accounts"


def segment_user_groups() -> str:
    """Hash: Segment user id -> group (account) id, learned from group calls. Under the {ingest}
    tag: a fold sets the links of its entries in the script that acknowledges them
    (integration/store/ingest_stream.py), so an entry folded again after its consumer died
    resolves its tracks with the links the first fold saw."""
    return f"{PREFIX}:{INGEST_TAG}:segment:user_groups"


def untagged_segment_user_groups() -> str:
    """segment_user_groups before the {ingest} tag (until 2026-12)."""
    return f"{PREFIX}:segment:user_groups"


def unmatched() -> str:
    """Hash: kind + reference -> what the CRM could not place (JSON with counts and dates)."""
    return f"{PREFIX}:unmatched"


def rollups_layout() -> str:
    """Which layout the usage rollups are written in (integration/store/layout.py)."""
    return f"{PREFIX}:schema:rollups_layout"


def text(reply: bytes | str | int) -> str:
    """A Redis reply as text (RQ needs clients that return bytes, so we decode where we read)."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def crm_paused(crm: str) -> str:
    """Set while the CRM asked all workers to wait (a long rate-limit wait); its TTL is the wait."""
    return f"{PREFIX}:crm:{crm}:paused"


def crm_api_usage(crm: str) -> str:
    """Hash: the API calls used and allowed today, as the CRM last reported them."""
    return f"{PREFIX}:crm:{crm}:api_usage"


def crm_access_token(crm: str) -> str:
    """The OAuth access token, shared by all workers until it expires (a secret: never logged)."""
    return f"{PREFIX}:crm:{crm}:oauth_access_token"


def crm_company(crm: str, match_field: str, product_id: str) -> str:
    """A short-lived copy of the company that holds our product account id."""
    return f"{PREFIX}:crm:{crm}:company:{match_field}:{product_id}"


def crm_contact(crm: str, email: str) -> str:
    """A short-lived copy of a contact's CRM id; the email is hashed (it is personal data)."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"{PREFIX}:crm:{crm}:contact:{digest}"


def crm_owner(crm: str, owner_id: str) -> str:
    """A short-lived copy of an owner's login (email and user id), to send as."""
    return f"{PREFIX}:crm:{crm}:owner:{owner_id}"


def crm_notification_type(crm: str, name: str) -> str:
    """The id of a custom notification type, looked up once."""
    return f"{PREFIX}:crm:{crm}:notification_type:{name}"


def dev_database_claim(number: int) -> str:
    """In database 0 of a development server: which run holds logical database `number`."""
    return f"{PREFIX}:dev:claim:db{number}"


def playbook_runs(account_id: str) -> str:
    """Hash: run slot (playbook|trigger) -> the latest run of that playbook for that trigger
    (JSON, playbooks/runs.py), active or ended (ended runs date the cooldowns)."""
    return f"{PREFIX}:{account_tag(account_id)}:runs"


def steps_due() -> str:
    """Sorted set: `account_id<US>slot` of active runs, scored by the day number their next
    step is due (integration/store/runs.py)."""
    return f"{PREFIX}:playbook:steps_due"


def step_claim(run_id: str, step: int) -> str:
    """Set while a worker runs a step, so a duplicate job does not run it at the same time."""
    digest = hashlib.sha256(f"{run_id}\x00{step}".encode()).hexdigest()[:40]
    return f"{PREFIX}:playbook:step_claim:{digest}"


def run_completed(account_id: str, run_id: str) -> str:
    """Set when the rep completed a run's task while one of its steps was running."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:40]
    return f"{PREFIX}:{account_tag(account_id)}:run_completed:{digest}"


def task_cap(kind: str, who: str, period: str) -> str:
    """Counter: new tasks for an assignee on a day, or on an account in an ISO week."""
    return f"{PREFIX}:cap:{kind}:{who}:{period}"


def tasks_held() -> str:
    """Sorted set: tasks held back by a cap (hashed idempotency keys), highest risk first
    (the score is minus the risk score, then the day held). Tagged with its tasks, so one
    transaction writes both on a Redis Cluster (integration/store/caps.py)."""
    return f"{PREFIX}:{{held}}:tasks:held"


def held_task(member: str) -> str:
    """The held task itself (JSON), by its member in tasks_held, until it is released."""
    return f"{PREFIX}:{{held}}:tasks:held:{member}"


def untagged_names() -> dict[str, str]:
    """The names the coordination keys (the evaluation's hand-off, known accounts, watermarks,
    when ticket closings began) had before the {ci} tag (until 2026-12), each with its name
    now: `integration migrate` and the sweep move them over (integration/store/renames.py)."""
    return {
        f"{PREFIX}:dirty_accounts:by_change": dirty_accounts(),
        f"{PREFIX}:evaluation:last_run": evaluation_ran(),
        f"{PREFIX}:processing_accounts": processing_accounts(),
        f"{PREFIX}:processing_holders": processing_holders(),
        f"{PREFIX}:batch_leases": batch_leases(),
        f"{PREFIX}:known_accounts": known_accounts(),
        f"{PREFIX}:watermarks": watermarks(),
        f"{PREFIX}:tickets:closings_seen": ticket_closings_seen(),
    }


def untagged_tasks_held() -> str:
    """tasks_held before the {held} tag; its tasks move with it, member by member."""
    return f"{PREFIX}:tasks:held"


def untagged_held_task(member: str) -> str:
    """A held task's key before the {held} tag."""
    return f"{PREFIX}:tasks:held:{member}"


def crm_user(crm: str, user_id: str) -> str:
    """A short-lived copy of a CRM user's name, email and manager (routing, Slack, email)."""
    return f"{PREFIX}:crm:{crm}:user:{user_id}"
