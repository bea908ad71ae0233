"""Every shipped playbook, as a rep meets it: the real signals that raise its reason are posted to
the web app, real RQ workers drain them against a real Redis, and the sandbox CRM holds what the
rep sees: one task (or the note, alert or enrollment the playbook makes) for the right person,
with the reason and its numbers, the trend where the reason has a metric, and no sentence broken
across lines. The same signals again, the evaluation again and the step job again add nothing."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from rq import Queue

from adapters.sandbox.adapter import SandboxCrm
from integration.config.loading import load_config
from integration.config.settings import Settings, lookup_env
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context
from integration.jobs.queues import EVALUATE
from playbooks.engine import shipped_definitions
from playbooks.templates import sentence_breaks
from playbooks.waterfall import calendar, run_due_steps
from tests.conftest import (
    CHAMPION_LEFT,
    JUDGED_AT_ONCE,
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    WEBHOOKS,
    drain,
    post_signed,
    usage_complete_through_yesterday,
)
from tests.fakes.slack_server import TEST_TOKEN, FakeSlack
from webhooks.app import create_app

SLACK_TOKEN_ENV = "TEST_SLACK_TOKEN"  # noqa: S105 - a variable's name
POST_CHUNK = 500

# The sandbox as an admin sets it up: owners with their managers, a CSM and an AE on each
# company (company properties mapped by account_facts), a primary contact and a champion.
SEED: dict[str, Any] = {
    "owners": [
        {"id": "owner-mia", "name": "Mia Stone", "email": "mia@vendor.example"},
        {
            "id": "owner-ana",
            "name": "Ana Ortiz",
            "email": "ana@vendor.example",
            "manager_id": "owner-mia",
        },
        {
            "id": "owner-ben",
            "name": "Ben Cole",
            "email": "ben@vendor.example",
            "manager_id": "owner-mia",
        },
        {"id": "owner-cara", "name": "Cara Diaz", "email": "cara@vendor.example"},
        {"id": "owner-alex", "name": "Alex Kim", "email": "alex@vendor.example"},
    ],
    "companies": [
        {
            "id": "1001",
            "name": "Acme Analytics",
            "domain": "acme.example",
            "owner_id": "owner-ana",
            "properties": {
                "product_account_id": "acme",
                "csm_user": "owner-cara",
                "ae_user": "owner-alex",
            },
        },
        {
            "id": "1002",
            "name": "Globex",
            "domain": "globex.example",
            "owner_id": "owner-ben",
            "properties": {
                "product_account_id": "globex",
                "csm_user": "owner-cara",
                "ae_user": "owner-alex",
            },
        },
    ],
    "contacts": [
        {
            "id": "2001",
            "email": "priya@globex.example",
            "name": "Priya Natarajan",
            "company_id": "1002",
            "title": "Director of Operations",
            "is_champion": True,
        },
        {
            "id": "2002",
            "email": "omar@acme.example",
            "name": "Omar Haddad",
            "company_id": "1001",
            "title": "Operations Manager",
            "is_primary": True,
        },
        {
            "id": "2003",
            "email": "sam@globex.example",
            "name": "Sam Lee",
            "company_id": "1002",
            "title": "Data Lead",
        },
    ],
}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Env:
    """The web app, a context installed for the in-process workers, and the sandbox CRM."""

    context: Context
    client: Any
    redis: Redis
    secrets: dict[str, str]

    @property
    def crm(self) -> SandboxCrm:
        assert isinstance(self.context.crm, SandboxCrm)
        return self.context.crm

    def post_usage(self, events: list[dict[str, Any]]) -> None:
        """Each chunk a new delivery; the events' own ids keep a re-sent event counted once."""
        for start in range(0, len(events), POST_CHUNK):
            chunk = events[start : start + POST_CHUNK]
            response = post_signed(
                self.client, "/webhooks/usage", self.secrets[USAGE_SECRET_ENV], chunk
            )
            assert response.status_code in (200, 202), response.get_data(as_text=True)

    def post_job_change(self, change: dict[str, Any]) -> None:
        response = post_signed(
            self.client, "/webhooks/job-changes", self.secrets[PEOPLE_SECRET_ENV], change
        )
        assert response.status_code in (200, 202), response.get_data(as_text=True)

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.crm.path)) as db:
            return db.execute(sql, args).fetchall()

    def tasks(self, playbook: str) -> list[dict[str, Any]]:
        """The tasks a playbook created, oldest first (its runs' keys start with its name)."""
        found = self.rows(
            "select subject, body, owner_id, company_id, contact_id, priority, task_type, "
            "status, idempotency_key from tasks where idempotency_key like ? "
            "order by created_at, id",
            f"{playbook}:%",
        )
        names = (
            *("subject", "body", "owner_id", "company_id", "contact_id"),
            *("priority", "type", "status", "key"),
        )
        return [dict(zip(names, row, strict=True)) for row in found]

    def everything(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every record the playbooks can make in the CRM, by table."""
        return {
            table: self.rows(f"select * from {table} order by id")  # noqa: S608 - fixed names
            for table in ("tasks", "notes", "notifications", "enrollments")
        }

    def run_step_job(self) -> None:
        """The every-minute step job (integration/jobs/cron.py), through a real RQ worker."""
        Queue(EVALUATE, connection=self.redis).enqueue("integration.jobs.steps.run_playbook_steps")
        assert drain(self.redis)

    def assert_nothing_new_after_a_rerun(
        self, repost: Callable[[], None], account_ids: list[str], now: datetime | None = None
    ) -> None:
        """The same signals again, the evaluation again, the step job again: nothing new."""
        before = self.everything()
        assert before["tasks"] or before["notifications"] or before["enrollments"]
        repost()
        drain(self.redis)  # a re-delivery refused as seen queues nothing
        jobs.evaluate_accounts(self.context, account_ids, datetime.now(UTC))
        self.run_step_job()
        if now is not None:
            run_due_steps(self.context, self.context.playbooks, now)
        assert self.everything() == before


@pytest.fixture
def make_env(
    tmp_path: Path,
    redis_url: str,
    redis: Redis,
    webhook_secrets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Env]]:
    """Build the service from a config YAML written here, tuned per test."""
    opened: list[tuple[Context, Any]] = []

    def make(config: dict[str, Any] | None = None, seed: dict[str, Any] | None = None) -> Env:
        seed_path = tmp_path / "seed.yaml"
        seed_path.write_text(yaml.safe_dump(seed or SEED))
        base = {
            "crm": {
                "kind": "sandbox",
                "sandbox": {"path": str(tmp_path / "crm.sqlite3"), "seed_file": str(seed_path)},
            },
            "owners": {"fallback_owner": "owner-mia"},
            "account_facts": {"csm": "csm_user", "ae": "ae_user"},
            "webhooks": WEBHOOKS,
            "evaluation": JUDGED_AT_ONCE,
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(merged(base, config or {})))
        monkeypatch.setenv(SLACK_TOKEN_ENV, TEST_TOKEN)
        settings = Settings(config=path, redis_url=redis_url)
        # Loaded as a worker loads it; build_context resolves (and so checks) the playbooks.
        config_read = load_config(path, lookup_env, shipped_definitions())
        context = build_context(settings, config_read)
        jobs.install_context(context)
        app = create_app(settings, context.config)
        opened.append((context, app))
        return Env(context, app.test_client(), redis, webhook_secrets)

    yield make
    jobs.install_context(None)
    for context, app in opened:
        app.extensions["integration.redis"].close()
        context.redis.close()


# -- signals ------------------------------------------------------------------------------------


def day(days_ago: int) -> datetime:
    """Midnight UTC `days_ago` days before today: whole days ago, whatever the hour (at 00:30
    a test run at 00:10 found the last login 19.99 days ago, "19 days")."""
    today = datetime.now(UTC).date() - timedelta(days=days_ago)
    return datetime.combine(today, time(0, 0), UTC)


def events(
    account: str,
    per_day: list[int],
    event: str = "login",
    ends_days_ago: int = 1,
    seats: int | None = None,
    properties: Callable[[int, int], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """per_day[i] events (by users 0..n-1) on each day, the last entry `ends_days_ago` days ago;
    each event has its own id, so a re-delivery counts nothing twice."""
    out = []
    for offset, count in enumerate(reversed(per_day)):
        days_ago = ends_days_ago + offset
        for user in range(count):
            item: dict[str, Any] = {
                "account_id": account,
                "user_id": f"{account}-user-{user}",
                "event": event,
                "timestamp": day(days_ago).isoformat(),
                "event_id": f"{account}:{event}:{days_ago}:{user}",
            }
            if seats is not None:
                item["seats"] = seats
            if properties is not None:
                item["properties"] = properties(days_ago, user)
            out.append(item)
    return out


def one(account: str, name: str, days_ago: int, **properties: Any) -> dict[str, Any]:
    return {
        "account_id": account,
        "user_id": f"{account}-user-0",
        "event": name,
        "timestamp": day(days_ago).isoformat(),
        "event_id": f"{account}:{name}:{days_ago}:{sorted(properties.items())}",
        "properties": properties,
    }


def at_working_days(context: Context, days: int) -> datetime:
    """Mid-morning on the working day `days` working days from today (the config's calendar)."""
    later = calendar(context).add_working_days(datetime.now(UTC).date(), days)
    return datetime.combine(later, time(9), UTC)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def readable(body: str) -> None:
    assert sentence_breaks(body) == [], body
    assert body.splitlines()[-1].startswith("Suggested next step: "), body
    assert "{{" not in body, body
    assert "None" not in body, body


def why(body: str) -> str:
    return body.splitlines()[0]


def line_starting(body: str, start: str) -> str:
    [found] = [line for line in body.splitlines() if line.startswith(start)]
    return found


DROPPING = [10] * 42 + [4] * 7  # ten people a day, then four for the last week


# -- usage drop -----------------------------------------------------------------------------------


def test_usage_drop_calls_the_owner_then_escalates_to_the_manager_while_the_task_is_open(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    signals = events("acme", DROPPING)
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("usage_drop_checkin")
    assert task["subject"] == "Check in with Acme Analytics: product usage is down 60%"
    assert (task["owner_id"], task["company_id"], task["contact_id"]) == ("owner-ana", "1001", None)
    assert (task["priority"], task["type"], task["status"]) == ("high", "call", "NOT_STARTED")
    assert task["body"].splitlines()[:2] == [
        "Why: Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the "
        "last 7 days.",
        "Daily active users (weekly average), last 7 weeks (from 10 to 4): ██████▁",
    ]
    readable(task["body"])
    assert len(env.crm.tasks()) == 1  # no other playbook speaks for this drop

    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])

    # Three working days on, the check-in is still open and usage still down: the manager.
    later = at_working_days(env.context, 3)
    assert run_due_steps(env.context, env.context.playbooks, later - timedelta(days=1)) == 0
    assert run_due_steps(env.context, env.context.playbooks, later) == 1
    first, escalation = env.tasks("usage_drop_checkin")
    assert first == task
    assert escalation["owner_id"] == "owner-mia"  # Ana's manager, from the sandbox's owners
    assert escalation["subject"] == (
        "Escalation: Acme Analytics usage still down 60%, check-in task still open"
    )
    body = escalation["body"]
    assert why(body) == why(task["body"])
    assert "Daily active users (weekly average), last 7 weeks: ██████▁" in body.splitlines()
    assert (
        "The account owner's check-in task is still open and usage has not recovered since "
        f"this playbook started on {today()}." in body.splitlines()
    )
    readable(body)
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"], later)


# -- key features ---------------------------------------------------------------------------------

KEY_FEATURES = {
    "metrics": {"counted": {"reports_created": ["report_created"]}},
    "risk": {"key_feature_not_adopted": {"key_features": ["reports_created"]}},
}


def test_a_key_feature_nobody_adopted_asks_the_csm_for_a_training_session(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(KEY_FEATURES)
    signals = events("acme", [6] * 49)  # six people a day log in; nobody creates a report
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("key_feature_training")
    assert task["subject"] == "Conduct a training session at Acme Analytics: reports created"
    assert (task["owner_id"], task["type"], task["priority"]) == ("owner-cara", "meeting", "medium")
    assert why(task["body"]) == "Why: No one used reports created in the last 30 days."
    assert line_starting(task["body"], "Use of reports created a week, last ")
    readable(task["body"])
    assert len(env.crm.tasks()) == 1
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])


def test_a_key_feature_nobody_used_is_drawn_as_no_use(make_env: Callable[..., Env]) -> None:
    env = make_env(KEY_FEATURES)
    env.post_usage(events("acme", [6] * 49))
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)
    [task] = env.tasks("key_feature_training")
    line = line_starting(task["body"], "Use of reports created a week, last ")
    assert line.endswith(": ▁▁▁▁▁▁▁"), line


def test_a_key_feature_in_decline_asks_the_csm_for_a_training_session_with_its_trend(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(KEY_FEATURES)
    signals = [
        *events("acme", [10] * 56),
        *events("acme", [10] * 49 + [2] * 7, event="report_created"),
    ]
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("key_feature_training")
    assert task["subject"] == "Conduct a training session at Acme Analytics: reports created"
    assert task["owner_id"] == "owner-cara"
    assert why(task["body"]).startswith("Why: Use of reports created fell 80% ")
    assert "(2.0 vs 10.0 a day)" in why(task["body"])
    assert "Use of reports created a week, last 8 weeks: ███████▁" in task["body"].splitlines()
    readable(task["body"])
    assert len(env.crm.tasks()) == 1
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])


# -- license utilization ----------------------------------------------------------------------


def test_low_license_utilization_gives_the_csm_a_review_and_tells_the_ae_in_the_crm(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    signals = events("acme", [8] * 49, seats=20)
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("low_license_utilization")
    assert task["subject"] == "Review seat use with Acme Analytics: 8 of 20 seats used"
    assert task["owner_id"] == "owner-cara"
    reason = "Only 8 of 20 licensed seats were used in the last 30 days (40%, below 60%)."
    assert why(task["body"]) == f"Why: {reason}"
    assert "Daily active users (weekly average), last 7 weeks: ▄▄▄▄▄▄▄" in task["body"].splitlines()
    readable(task["body"])
    [(owner, title, body, company)] = env.rows(
        "select owner_id, title, body, company_id from notifications"
    )
    assert (owner, company) == ("owner-alex", "1001")
    assert title == "Commercial risk at Acme Analytics: seats unused"
    assert body == f"{reason} The CSM has a task to review seat use with the customer."
    assert sentence_breaks(body) == []
    assert len(env.crm.tasks()) == 1
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])


def test_utilization_up_forty_points_gives_the_ae_an_expansion_conversation(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    signals = events("acme", [4] * 35 + [12] * 30, seats=20)
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("utilization_growth_expansion")
    assert task["subject"] == "Expansion at Acme Analytics: seat use up 40 points in 30 days"
    assert (task["owner_id"], task["priority"]) == ("owner-alex", "medium")
    assert why(task["body"]) == (
        "Why: License utilization rose from 20% to 60% in 30 days (12 of 20 seats in use): "
        "room to expand."
    )
    trend = line_starting(task["body"], "Daily active users (weekly average), last ")
    assert trend.endswith("▁▁▁▃████")
    readable(task["body"])
    assert len(env.crm.tasks()) == 1
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])


# -- onboarding -------------------------------------------------------------------------------


def test_a_stalled_onboarding_gives_the_csm_a_task_naming_the_milestone(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(
        {
            "metrics": {
                "counted": {
                    "data_imported": ["import_completed"],
                    "dashboard_shared": ["dashboard_shared"],
                }
            },
            "risk": {"onboarding_stalled": {"milestones": ["data_imported", "dashboard_shared"]}},
        }
    )
    signals = [*events("acme", [3] * 95), one("acme", "import_completed", 80)]
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("onboarding_stalled")
    assert task["subject"] == "Onboarding stalled at Acme Analytics: dashboard shared not reached"
    assert (task["owner_id"], task["priority"]) == ("owner-cara", "high")
    assert why(task["body"]) == (
        "Why: Onboarding stalled: 95 days in, the account has not reached dashboard shared "
        "(expected within 90 days)."
    )
    assert (
        re.search(r"last \d+ weeks", task["body"]) is None
    )  # missing milestones are zero: no line to draw
    assert task["body"].splitlines()[-1] == (
        "Suggested next step: call the onboarding lead at Acme Analytics, find what blocks "
        "dashboard shared, and book a working session to get it done this week."
    )
    readable(task["body"])
    assert len(env.crm.tasks()) == 1
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])


# -- inactivity -------------------------------------------------------------------------------

IDLE = events("acme", [5] * 40, ends_days_ago=20)  # five people a day, then nobody for 19 days


def test_inactivity_without_a_sequence_gives_the_owner_a_win_back_call_at_once(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    env.post_usage(IDLE)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("inactivity_winback")
    assert task["subject"] == "Nobody at Acme Analytics has used the product for 20 days"
    assert (task["owner_id"], task["type"]) == ("owner-ana", "call")
    last = day(20).date().isoformat()
    assert why(task["body"]) == (
        f"Why: No one at the account has used the product for 20 days (last activity {last})."
    )
    assert line_starting(task["body"], "Daily active users (weekly average), last ")
    readable(task["body"])
    assert len(env.crm.tasks()) == 1  # the usage drop is left to the win-back
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(IDLE), ["acme"])


def test_inactivity_enrolls_the_primary_contact_in_the_win_back_then_calls_five_days_on(
    make_env: Callable[..., Env],
) -> None:
    env = make_env({"playbooks": {"inactivity_winback": {"sequence_id": "seq-we-miss-you"}}})
    env.post_usage(IDLE)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [(contact, sequence, sender)] = env.rows(
        "select contact_id, sequence_id, owner_id from enrollments"
    )
    assert (contact, sequence, sender) == ("2002", "seq-we-miss-you", "owner-ana")
    assert env.crm.tasks() == []
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(IDLE), ["acme"])

    later = at_working_days(env.context, 5)
    assert run_due_steps(env.context, env.context.playbooks, later - timedelta(days=1)) == 0
    assert run_due_steps(env.context, env.context.playbooks, later) == 1
    [task] = env.tasks("inactivity_winback")
    assert task["subject"] == "Nobody at Acme Analytics has used the product for 20 days"
    assert task["owner_id"] == "owner-ana"
    readable(task["body"])
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(IDLE), ["acme"], later)


# -- people -----------------------------------------------------------------------------------


def test_a_champion_leaving_gives_the_owner_a_multithread_task_a_note_and_an_intro_sequence(
    make_env: Callable[..., Env],
) -> None:
    env = make_env({"playbooks": {"champion_left_multithread": {"sequence_id": "seq-intro"}}})
    env.post_job_change(CHAMPION_LEFT)
    assert drain(env.redis)

    [task] = env.tasks("champion_left_multithread")
    assert task["subject"] == "Priya Natarajan left Globex: find a new champion"
    assert (task["owner_id"], task["company_id"], task["contact_id"]) == (
        "owner-ben",
        "1002",
        "2001",
    )
    assert task["body"].splitlines()[:2] == [
        "Why: Champion Priya Natarajan, Director of Operations, left the account for Umbrella "
        f"Corp (reported by clay on {today()}).",
        "Priya Natarajan is now VP Operations at Umbrella Corp.",
    ]
    assert re.search(r"last \d+ weeks", task["body"]) is None
    readable(task["body"])
    [(note, company, contact, owner)] = env.rows(
        "select body, company_id, contact_id, owner_id from notes"
    )
    assert (company, contact, owner) == ("1002", "2001", "owner-ben")
    assert note.startswith("Champion change: Champion Priya Natarajan, Director of Operations,")
    assert sentence_breaks(note) == []
    [(contact, sequence, sender)] = env.rows(
        "select contact_id, sequence_id, owner_id from enrollments"
    )
    assert (contact, sequence, sender) == ("2001", "seq-intro", "owner-ben")
    assert len(env.crm.tasks()) == 1

    def again() -> None:
        env.post_job_change(CHAMPION_LEFT)
        env.post_job_change(CHAMPION_LEFT | {"event_id": "pdl-99", "source": "pdl"})

    env.assert_nothing_new_after_a_rerun(again, ["globex"])


def test_a_past_champion_joining_alerts_the_csm_in_slack_and_books_a_check_in(
    make_env: Callable[..., Env],
) -> None:
    with FakeSlack() as slack:
        cara = slack.add_user("cara@vendor.example")
        env = make_env(
            {"channels": {"slack": {"token_env": SLACK_TOKEN_ENV, "base_url": slack.base_url}}}
        )
        move = CHAMPION_LEFT | {
            "event_id": "clay-row-2",
            "current_company_domain": "acme.example",
            "current_company_name": "Acme Analytics",
        }
        env.post_job_change(move)
        assert drain(env.redis)

        [task] = env.tasks("champion_joined_welcome")
        assert task["subject"] == (
            "Congratulate Priya Natarajan on joining Acme Analytics and book a check-in"
        )
        assert (task["owner_id"], task["company_id"], task["type"]) == (
            "owner-cara",
            "1001",
            "email",
        )
        reason = (
            f"Priya Natarajan, a champion at Globex, joined as VP Operations (reported by clay "
            f"on {today()}): a warm introduction."
        )
        assert why(task["body"]) == f"Why: {reason}"
        readable(task["body"])
        [message] = slack.messages
        assert message.to_user == cara
        assert message.text == (
            f"{reason} Congratulate them and book a check-in: a champion who knows us is the "
            "best way into Acme Analytics.\n<sandbox://company/1001|Open in the CRM>"
        )
        assert all(request.status == 200 for request in slack.requests)
        # Globex, which she left, has its own playbook: one task each, nothing else.
        assert [t["subject"] for t in env.tasks("champion_left_multithread")] == [
            "Priya Natarajan left Globex: find a new champion"
        ]
        assert len(env.crm.tasks()) == 2

        env.assert_nothing_new_after_a_rerun(lambda: env.post_job_change(move), ["acme", "globex"])
        assert len(slack.messages) == 1


NEW_DECISION_MAKERS = {
    "hire": (
        {
            "event_id": "pdl-7",
            "source": "pdl",
            "change_type": "company_change",
            "email": "kim@acme.example",
            "full_name": "Kim Park",
            "previous_company_domain": "elsewhere.example",
            "current_company_domain": "acme.example",
            "current_job_title": "VP Operations",
        },
        "acme",
        "Meet Kim Park, new VP Operations at Acme Analytics",
        ("owner-ana", "1001", None),
        "Why: Kim Park joined as VP Operations (reported by pdl on {today}): a new "
        "decision-maker to meet.",
    ),
    "promotion": (
        {
            "event_id": "clay-55",
            "source": "clay",
            "change_type": "promotion",
            "email": "sam@globex.example",
            "full_name": "Sam Lee",
            "previous_company_domain": "globex.example",
            "previous_job_title": "Data Lead",
            "current_job_title": "Chief Data Officer",
        },
        "globex",
        "Meet Sam Lee, new Chief Data Officer at Globex",
        ("owner-ben", "1002", "2003"),
        "Why: Sam Lee was promoted to Chief Data Officer (reported by clay on {today}): a new "
        "decision-maker to meet.",
    ),
}


@pytest.mark.parametrize("case", sorted(NEW_DECISION_MAKERS))
def test_a_new_decision_maker_gives_the_owner_an_intro_meeting(
    make_env: Callable[..., Env], case: str
) -> None:
    change, account, subject, where, reason = NEW_DECISION_MAKERS[case]
    env = make_env()
    env.post_job_change(change)
    assert drain(env.redis)

    [task] = env.tasks("new_decision_maker_intro")
    assert task["subject"] == subject
    assert (task["owner_id"], task["company_id"], task["contact_id"]) == where
    assert (task["type"], task["priority"]) == ("meeting", "high")
    assert why(task["body"]) == reason.format(today=today())
    readable(task["body"])
    assert len(env.crm.tasks()) == 1
    env.assert_nothing_new_after_a_rerun(lambda: env.post_job_change(change), [account])


# -- voice of the customer ---------------------------------------------------------------------


def _nps() -> list[dict[str, Any]]:
    return [
        *events("acme", [6] * 35),
        one("acme", "nps_submitted", 3, score=3),
        one("acme", "nps_submitted", 2, score=9),
    ]


def _csat() -> list[dict[str, Any]]:
    return [
        *events("acme", [6] * 35),
        one("acme", "csat_submitted", 5, score=2),
        one("acme", "csat_submitted", 4, score=2),
        one("acme", "csat_submitted", 3, score=5),
    ]


def _ticket_spike() -> list[dict[str, Any]]:
    weekly = [one("acme", "ticket_opened", 7 * week + 10) for week in range(8)]
    recent = [one("acme", "ticket_opened", n, ticket_id=f"T-{n}") for n in range(1, 7)]
    return [*events("acme", [6] * 70), *weekly, *recent]


def _long_open() -> list[dict[str, Any]]:
    return [
        *events("acme", [6] * 35),
        one("acme", "ticket_opened", 34, ticket_id="T-1"),
        one("acme", "ticket_closed", 30, ticket_id="T-1"),
        one("acme", "ticket_opened", 20, ticket_id="T-2"),
    ]


VOICE = {
    "nps": (
        _nps,
        "NPS detractor",
        "Why: 1 of 2 NPS responses in the last 30 days were detractors (a score of 6 or less).",
        "NPS detractors a week, last 5 weeks: ▁▁▁▁█",
    ),
    "csat": (
        _csat,
        "Low CSAT",
        "Why: Only 1 of 3 CSAT responses in the last 30 days were satisfied (33%, below 70%).",
        "CSAT responses a week, last ",
    ),
    "ticket_spike": (
        _ticket_spike,
        "Support ticket spike",
        "Why: 6 support tickets were opened in the last 7 days, against 1.0 a week over the 8 "
        "weeks before.",
        "Support tickets opened a week, last ",
    ),
    "long_open_tickets": (
        _long_open,
        "Long-open support tickets",
        "Why: A support ticket has been open for more than 14 days (20 days).",
        "Support tickets opened a week, last ",
    ),
}


@pytest.mark.parametrize("case", sorted(VOICE))
def test_the_voice_of_the_customer_gives_the_csm_a_follow_up_with_the_support_context(
    make_env: Callable[..., Env], case: str
) -> None:
    build, title, reason, trend = VOICE[case]
    env = make_env()
    signals = build()
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [task] = env.tasks("voice_of_customer_followup")
    assert task["subject"] == f"Follow up with Acme Analytics ({title})"
    assert (task["owner_id"], task["type"], task["priority"]) == ("owner-cara", "call", "high")
    assert why(task["body"]) == reason
    assert line_starting(task["body"], trend)
    readable(task["body"])
    assert len(env.crm.tasks()) == 1
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])


# -- renewal --------------------------------------------------------------------------------------


def renewal_seed(days: int) -> tuple[dict[str, Any], str]:
    renewal = (datetime.now(UTC).date() + timedelta(days=days)).isoformat()
    seed = merged(SEED, {})
    seed["companies"] = [
        merged(company, {"properties": {"renewal_date": renewal}}) for company in SEED["companies"]
    ]
    return seed, renewal


def test_a_renewal_near_with_open_risk_escalates_to_the_ae_and_the_manager(
    make_env: Callable[..., Env],
) -> None:
    seed, renewal = renewal_seed(40)
    env = make_env({"account_facts": {"renewal_date": "renewal_date"}}, seed=seed)
    signals = events("acme", [10] * 42 + [5] * 7)  # a medium drop, a step up with the renewal
    env.post_usage(signals)
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    ae, manager = env.tasks("renewal_risk_escalation")
    assert ae["subject"] == f"Renewal at risk: Acme Analytics renews on {renewal}"
    assert manager["subject"] == "Renewal at risk: Acme Analytics, 40 days to go, risk high"
    assert (ae["owner_id"], manager["owner_id"]) == ("owner-alex", "owner-mia")
    drop = (
        "Daily active users fell 50% below their 4-week normal (5.0 vs 10.0 a day) over the "
        "last 7 days."
    )
    for task in (ae, manager):
        assert task["body"].splitlines()[:3] == [
            f"Why: The renewal is on {renewal}, 40 days away, while other risks are open on the "
            "account.",
            "Open risks:",
            f"- {drop}",
        ]
        assert re.search(r"last \d+ weeks", task["body"]) is None  # a date, not a metric
        readable(task["body"])
    # The drop itself is the owner's check-in, as ever.
    [checkin] = env.tasks("usage_drop_checkin")
    assert checkin["owner_id"] == "owner-ana"
    assert len(env.crm.tasks()) == 3
    env.assert_nothing_new_after_a_rerun(lambda: env.post_usage(signals), ["acme"])


def test_a_renewal_far_off_escalates_nothing(make_env: Callable[..., Env]) -> None:
    seed, _ = renewal_seed(200)
    env = make_env({"account_facts": {"renewal_date": "renewal_date"}}, seed=seed)
    env.post_usage(events("acme", [10] * 42 + [5] * 7))
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)
    assert env.tasks("renewal_risk_escalation") == []
    assert len(env.tasks("usage_drop_checkin")) == 1


def test_the_renewal_task_does_not_point_the_rep_to_risks_above_it(
    make_env: Callable[..., Env],
) -> None:
    seed, _ = renewal_seed(40)
    env = make_env({"account_facts": {"renewal_date": "renewal_date"}}, seed=seed)
    env.post_usage(events("acme", [10] * 42 + [5] * 7))
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)
    ae, _ = env.tasks("renewal_risk_escalation")
    assert "above" not in why(ae["body"]), ae["body"]


def test_a_renewal_at_risk_because_the_champion_left_lists_that_as_the_open_risk(
    make_env: Callable[..., Env],
) -> None:
    seed, renewal = renewal_seed(40)
    env = make_env({"account_facts": {"renewal_date": "renewal_date"}}, seed=seed)
    env.post_job_change(CHAMPION_LEFT)
    assert drain(env.redis)

    ae, manager = env.tasks("renewal_risk_escalation")
    assert ae["subject"] == f"Renewal at risk: Globex renews on {renewal}"
    assert manager["owner_id"] == "owner-mia"  # Ben's manager
    lines = ae["body"].splitlines()
    heading = lines.index("Open risks:")
    assert lines[heading + 1].startswith("- Champion Priya Natarajan"), ae["body"]


def test_a_new_decision_maker_is_named_in_the_usage_drop_check_in_as_someone_to_call(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    env.post_job_change(NEW_DECISION_MAKERS["hire"][0])
    assert drain(env.redis)
    env.post_usage(events("acme", DROPPING))
    usage_complete_through_yesterday(env.redis)
    assert drain(env.redis)

    [intro] = env.tasks("new_decision_maker_intro")
    [checkin] = env.tasks("usage_drop_checkin")
    kim = f"Kim Park joined as VP Operations (reported by pdl on {today()}): a new decision-maker "
    assert intro["subject"] == "Meet Kim Park, new VP Operations at Acme Analytics"
    lines = checkin["body"].splitlines()
    assert lines[lines.index("People involved:") + 1] == f"- {kim}to meet."
    readable(checkin["body"])
    assert len(env.crm.tasks()) == 2


def test_a_past_champion_is_said_to_come_from_the_account_name_not_its_product_id(
    make_env: Callable[..., Env],
) -> None:
    seed = merged(SEED, {})
    seed["companies"] = [
        merged(company, {"properties": {"product_account_id": "acct-4417"}})
        if company["id"] == "1002"
        else company
        for company in SEED["companies"]
    ]
    env = make_env(seed=seed)
    env.post_job_change(
        CHAMPION_LEFT
        | {
            "event_id": "clay-row-3",
            "current_company_domain": "acme.example",
            "current_company_name": "Acme Analytics",
        }
    )
    assert drain(env.redis)
    [task] = env.tasks("champion_joined_welcome")
    assert "a champion at Globex," in why(task["body"]), task["body"]
