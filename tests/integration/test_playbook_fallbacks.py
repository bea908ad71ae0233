"""What stands in when an alert cannot go where the playbook sends it, and when a capped task
finally goes out.

- A CRM alert (notify_owner) HubSpot cannot show becomes a low-priority FYI task for its reader,
  unless the same step already gives them a task; the sandbox shows the alert itself.
- A Slack DM to someone Slack does not know (or whose CRM user has no email) goes to
  channels.slack.default_channel, naming who it was for; without one it is reported and the CRM
  task still stands.
- A task held by a cap keeps its lead time when it is released.

Signals are posted, signed, to the web app; real RQ workers and a real Redis; the CRMs are the
sandbox and the loopback HubSpot fake, Slack its loopback fake; time is passed in, never slept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis

from adapters.sandbox.adapter import SandboxTask
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from integration.store import caps
from integration.store import runs as stored_runs
from playbooks.waterfall import run_due_steps
from tests.conftest import (
    JUDGED_AT_ONCE,
    USAGE_SECRET_ENV,
    WEBHOOKS,
    daily_usage,
    drain,
    post_signed,
    usage_complete_through_yesterday,
)
from tests.fakes.hubspot_server import FakeHubSpot
from tests.fakes.slack_server import FakeSlack
from tests.integration import worlds
from tests.integration.worlds import (
    DROP_60,
    LOW_SEATS,
    MONDAY,
    champion_joins_acme,
    day,
    flag,
    metric,
    slack_channels,
)
from webhooks.app import create_app

SEATS = 20
FYI = "No action needed beyond reading this: it is for your information."
COMMERCIAL = "Commercial risk at Acme Analytics: seats unused"
UNDERUSED = "Only 8 of 20 licensed seats were used in the last 30 days (40%, below 60%)."


def on(offset: int) -> str:
    return (MONDAY + timedelta(days=offset)).isoformat()


# == the sandbox world ==========================================================================

OWNERS = [
    {"id": "owner-ana", "name": "Ana Ortiz", "email": "ana@vendor.example"},
    {"id": "owner-ben", "name": "Ben Cole", "email": "ben@vendor.example"},
    {"id": "owner-noe", "name": "Noe Park"},  # no email in the CRM
    {"id": "owner-alex", "name": "Alex Kim", "email": "alex@vendor.example"},
]
COMPANIES = {  # product account id: (CRM id, name, owner, AE)
    "acme": ("1001", "Acme Analytics", "owner-ana", "owner-alex"),
    "globex": ("1002", "Globex", "owner-ben", None),
    "initech": ("1003", "Initech", "owner-ana", None),
    "umbrella": ("1004", "Umbrella", "owner-ana", None),
}


def _seed(acme_owner: str = "owner-ana") -> dict[str, Any]:
    companies = [
        worlds.company(
            account,
            crm_id,
            name,
            acme_owner if account == "acme" else owner,
            **({"ae_user": ae} if ae else {}),
        )
        for account, (crm_id, name, owner, ae) in COMPANIES.items()
    ]
    return {"owners": OWNERS, "companies": companies, "contacts": []}


class World(worlds.World):
    """tests/integration/worlds.py's world, on this file's seed, with the CRM's alerts."""

    companies = COMPANIES

    def notifications(self) -> list[tuple[str, str, str, str]]:
        with closing(sqlite3.connect(self.crm.path)) as db:
            return db.execute(
                "select owner_id, title, body, company_id from notifications order by created_at"
            ).fetchall()


@pytest.fixture
def make_world(
    settings: Settings, webhook_secrets: dict[str, str], redis: Redis
) -> Iterator[Callable[..., World]]:
    """conftest's sandbox config with these top-level keys replaced, on this file's seed."""
    with worlds.worlds(settings, webhook_secrets) as open_world:

        def build(acme_owner: str = "owner-ana", **changes: Any) -> World:
            return open_world(World, _seed(acme_owner), **changes)

        yield build


# == 1. a CRM alert HubSpot cannot show becomes a task for its reader ===========================

CLIENT_SECRET = "hubspot-app-client-secret"  # noqa: S105 - a test value
PUBLIC_URL = "http://localhost/webhooks/hubspot"


@dataclass
class Portal:
    hub: FakeHubSpot
    context: Context
    client: Any
    redis: Redis
    secrets: dict[str, str]
    ids: dict[str, str]

    def post_usage(self, msg_id: str, account: str = "acme") -> None:
        events = daily_usage(account, LOW_SEATS, seats=SEATS)
        secret = self.secrets[USAGE_SECRET_ENV]
        answer = post_signed(self.client, "/webhooks/usage", secret, events, msg_id=msg_id)
        assert answer.status_code in (200, 202), answer.get_data(as_text=True)

    def tasks(self, owner: str | None = None) -> list[dict[str, str]]:
        return sorted(
            (t for t in self.hub.tasks.values() if owner is None or t["hubspot_owner_id"] == owner),
            key=lambda task: task["hs_task_subject"],
        )

    def task_id(self, subject: str) -> str:
        [found] = [i for i, t in self.hub.tasks.items() if t["hs_task_subject"] == subject]
        return found

    def complete(self, task_id: str, event_id: int) -> None:
        """The rep ticks the task off in HubSpot; its signed webhook reaches a real worker."""
        self.hub.tasks[task_id]["hs_task_status"] = "COMPLETED"
        event = {
            "subscriptionType": "object.propertyChange",
            "objectTypeId": "0-27",
            "objectId": int(task_id),
            "propertyName": "hs_task_status",
            "propertyValue": "COMPLETED",
            "eventId": event_id,
            "subscriptionId": 9,
            "portalId": 33,
            "occurredAt": int(datetime.now(UTC).timestamp() * 1000),
        }
        body = json.dumps([event])
        stamp = str(event["occurredAt"])
        digest = hmac.new(
            CLIENT_SECRET.encode(), f"POST{PUBLIC_URL}{body}{stamp}".encode(), hashlib.sha256
        ).digest()
        headers = {
            "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
            "X-HubSpot-Request-Timestamp": stamp,
            "Content-Type": "application/json",
        }
        answer = self.client.post("/webhooks/hubspot", data=body, headers=headers)
        assert answer.status_code in (200, 202), answer.get_data(as_text=True)
        assert drain(self.redis)

    def run(self, playbook: str, account: str = "acme") -> dict[str, Any]:
        stored = stored_runs.load_runs(self.redis, [account])[account]
        [found] = [raw for raw in stored.values() if raw["playbook"] == playbook]
        return found


@pytest.fixture
def make_portal(
    tmp_path: Path,
    hub: FakeHubSpot,
    redis_url: str,
    redis: Redis,
    webhook_secrets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Portal]]:
    """A HubSpot portal (loopback fake): Ana owns Acme, Cara owns Globex; Ben is the AE of both,
    held in the company property `ae_owner_id` (mapped by account_facts.ae when `map_ae`); Mia
    is Ana's manager (by config: HubSpot does not know managers)."""
    opened: list[Context] = []

    def build(map_ae: bool, **config_keys: Any) -> Portal:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "test-token")
        monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", CLIENT_SECRET)
        people = {
            name: hub.add_owner(f"{name}@vendor.example", name.title(), "Doe")["id"]
            for name in ("ana", "ben", "cara", "mia")
        }
        companies = {
            account: hub.add_company(
                {
                    "name": name,
                    "product_account_id": account,
                    "domain": f"{account}.example",
                    "hubspot_owner_id": people[owner],
                    "ae_owner_id": people["ben"],
                }
            )
            for account, name, owner in (
                ("acme", "Acme Analytics", "ana"),
                ("globex", "Globex", "cara"),
            )
        }
        config: dict[str, Any] = {
            "crm": {
                "kind": "hubspot",
                "hubspot": {
                    "base_url": hub.base_url,
                    "lookup_cache_seconds": 0,
                    "webhook": {
                        "client_secret_env": "HUBSPOT_CLIENT_SECRET",
                        "public_url": PUBLIC_URL,
                    },
                },
            },
            "owners": {"managers": {people["ana"]: people["mia"]}},
            "webhooks": WEBHOOKS,
            "evaluation": JUDGED_AT_ONCE,
            **config_keys,
        }
        if map_ae:
            config["account_facts"] = {"ae": "ae_owner_id"}
        path = tmp_path / "hubspot.yaml"
        path.write_text(yaml.safe_dump(config))
        settings = Settings(config=path, redis_url=redis_url)
        context = build_context(settings, read_config(settings.config))
        jobs.install_context(context)
        opened.append(context)
        client = create_app(settings, context.config).test_client()
        return Portal(hub, context, client, redis, webhook_secrets, {**people, **companies})

    yield build
    jobs.install_context(None)
    for context in opened:
        context.redis.close()


def test_on_hubspot_the_csm_gets_the_review_and_the_ae_an_fyi_task_once(
    make_portal: Callable[..., Portal],
) -> None:
    portal = make_portal(map_ae=True)
    portal.post_usage("m1")
    usage_complete_through_yesterday(portal.redis)
    assert drain(portal.redis)

    # No CSM is mapped, so the review goes to the owner, Ana; Ben, the AE, cannot get an
    # in-app alert from HubSpot's API, so he gets the alert as a low-priority task.
    fyi, review = portal.tasks()
    assert review["hs_task_subject"] == "Review seat use with Acme Analytics: 8 of 20 seats used"
    assert (review["hubspot_owner_id"], review["hs_task_priority"]) == (portal.ids["ana"], "MEDIUM")
    assert fyi["hs_task_subject"] == COMMERCIAL
    assert (fyi["hubspot_owner_id"], fyi["hs_task_priority"], fyi["hs_task_type"]) == (
        portal.ids["ben"],
        "LOW",
        "TODO",
    )
    assert fyi["hs_task_status"] == "NOT_STARTED"
    body = fyi["hs_task_body"]
    assert UNDERUSED in body
    assert "The CSM has a task to review seat use with the customer." in body
    assert FYI in body
    for task_id in portal.hub.tasks:
        assert [a["to"]["id"] for a in portal.hub.associations["tasks"][task_id]] == [
            portal.ids["acme"]
        ]

    # Re-delivered (the same message id), judged again, the step runner again: nothing new.
    before = dict(portal.hub.tasks)
    portal.post_usage("m1")
    drain(portal.redis)
    jobs.evaluate_accounts(portal.context, ["acme"], datetime.now(UTC))
    run_due_steps(portal.context, portal.context.playbooks, datetime.now(UTC))
    run_due_steps(portal.context, portal.context.playbooks, datetime.now(UTC) + timedelta(days=3))
    assert portal.hub.tasks == before


def test_on_hubspot_an_ae_who_already_has_the_steps_task_gets_nothing_extra(
    make_portal: Callable[..., Portal],
) -> None:
    # Neither the CSM nor the AE is mapped: both are the owner, Ana, who has the review task.
    portal = make_portal(map_ae=False)
    portal.post_usage("m1")
    usage_complete_through_yesterday(portal.redis)
    assert drain(portal.redis)

    [review] = portal.tasks()
    assert review["hs_task_subject"] == "Review seat use with Acme Analytics: 8 of 20 seats used"
    assert review["hubspot_owner_id"] == portal.ids["ana"]
    assert all(FYI not in task["hs_task_body"] for task in portal.tasks())


def test_on_hubspot_the_fyi_tasks_count_against_the_aes_daily_cap(
    make_portal: Callable[..., Portal],
) -> None:
    # One sweep flags both of Ben's accounts; Ben may get one new task a day.
    portal = make_portal(map_ae=True, work={"caps": {"tasks_per_assignee_per_day": 1}})
    portal.post_usage("m1", "acme")
    portal.post_usage("m2", "globex")
    usage_complete_through_yesterday(portal.redis)
    assert drain(portal.redis)

    # Each owner has their review; Ana and Cara are under the cap.
    assert [t["hubspot_owner_id"] for t in portal.tasks() if "Review" in t["hs_task_subject"]] == [
        portal.ids["ana"],
        portal.ids["cara"],
    ]
    assert len(portal.tasks(portal.ids["ben"])) == 1  # the other FYI waits for a later day
    assert caps.held_count(portal.redis) == 1


# An admin's playbook: the owner reviews seat use and the AE is told; two working days later,
# if the owner's task is still open, their manager.
SEAT_REVIEW = {
    "low_license_utilization": {"enabled": False},
    "seat_review": {
        "title": "Seat review",
        "trigger": {"reasons": ["license_utilization"]},
        "steps": [
            {
                "name": "review",
                "actions": [
                    {
                        "task": {
                            "subject": "Review seats at {{ account.name }}",
                            "body": "{{ reason.text }}",
                        }
                    },
                    {
                        "notify_owner": {
                            "assignee": "ae",
                            "title": "Seats unused at {{ account.name }}",
                            "body": "{{ reason.text }}",
                        }
                    },
                ],
            },
            {
                "name": "escalate",
                "after_days": 2,
                "only_if": ["trigger_holds", "previous_task_open"],
                "actions": [
                    {
                        "task": {
                            "assignee": "manager",
                            "subject": "Seats at {{ account.name }}: the review is still open",
                            "body": "{{ reason.text }}",
                        }
                    }
                ],
            },
        ],
    },
}


def test_on_hubspot_the_ae_reading_the_fyi_does_not_cancel_the_escalation(
    make_portal: Callable[..., Portal],
) -> None:
    portal = make_portal(map_ae=True, playbooks=SEAT_REVIEW)
    portal.post_usage("m1")
    usage_complete_through_yesterday(portal.redis)
    assert drain(portal.redis)
    review, fyi = portal.tasks()
    assert (fyi["hs_task_subject"], fyi["hubspot_owner_id"]) == (
        "Seats unused at Acme Analytics",
        portal.ids["ben"],
    )
    assert review["hubspot_owner_id"] == portal.ids["ana"]

    # Ben reads the FYI and ticks it off; Ana has not touched her review.
    portal.complete(portal.task_id("Seats unused at Acme Analytics"), event_id=11)

    assert portal.run("seat_review")["status"] == "active"
    # Two working days on, Ana's review still open: Mia, her manager, is asked.
    later = datetime.now(UTC) + timedelta(days=4)
    assert run_due_steps(portal.context, portal.context.playbooks, later) == 1
    [escalation] = portal.tasks(portal.ids["mia"])
    assert escalation["hs_task_subject"] == "Seats at Acme Analytics: the review is still open"


def test_on_hubspot_the_owner_completing_their_own_task_still_cancels_the_escalation(
    make_portal: Callable[..., Portal],
) -> None:
    portal = make_portal(map_ae=True, playbooks=SEAT_REVIEW)
    portal.post_usage("m1")
    usage_complete_through_yesterday(portal.redis)
    assert drain(portal.redis)

    portal.complete(portal.task_id("Review seats at Acme Analytics"), event_id=12)

    run = portal.run("seat_review")
    assert (run["status"], run["steps"][-1][2]) == ("completed", "the rep completed the task")
    later = datetime.now(UTC) + timedelta(days=7)
    assert run_due_steps(portal.context, portal.context.playbooks, later) == 0
    assert len(portal.tasks()) == 2


def test_on_the_sandbox_the_ae_gets_the_alert_itself_and_no_extra_task(
    make_world: Callable[..., World],
) -> None:
    world = make_world(account_facts={"ae": "ae_user"})
    world.post_usage("acme", LOW_SEATS, seats=SEATS)
    usage_complete_through_yesterday(world.redis)
    world.evaluate(day(0), "acme")

    [review] = world.tasks()
    assert review.subject == "Review seat use with Acme Analytics: 8 of 20 seats used"
    assert (review.owner_id, review.priority) == ("owner-ana", "medium")
    [(owner, title, body, company)] = world.notifications()
    assert (owner, title, company) == ("owner-alex", COMMERCIAL, "1001")
    assert body == f"{UNDERUSED} The CSM has a task to review seat use with the customer."
    assert FYI not in body

    world.evaluate(day(0, 15), "acme")
    world.run_due_steps(day(3))
    assert len(world.tasks()) == 1
    assert len(world.notifications()) == 1


# == 2. a Slack DM that cannot be delivered goes to the default channel =========================

# Priya, a champion at Globex, joins Acme (worlds.CHAMPION_JOINED): the shipped
# champion_joined_welcome playbook, whose first step DMs the CSM (no CSM mapped: the owner)
# beside a CRM task.
WELCOME = "Congratulate Priya Natarajan on joining Acme Analytics and book a check-in"


def test_a_csm_not_in_slack_is_alerted_in_the_default_channel_naming_them(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    channel = slack.add_channel("cs-alerts")
    world = make_world(channels=slack_channels(slack, "#cs-alerts"))

    task = champion_joins_acme(world)

    assert (task.subject, task.owner_id) == (WELCOME, "owner-ana")
    lookup, post = slack.requests
    assert (lookup.method, lookup.args, lookup.response["error"]) == (
        "users.lookupByEmail",
        {"email": "ana@vendor.example"},
        "users_not_found",
    )
    assert (post.method, post.args["channel"]) == ("chat.postMessage", "#cs-alerts")
    [posted] = slack.messages
    assert (posted.channel, posted.to_user) == (channel, None)
    assert posted.text is not None
    lines = posted.text.splitlines()
    assert lines[0].startswith("Priya Natarajan")
    assert "Congratulate them and book a check-in" in lines[0]
    assert "(For Ana Ortiz, who is not in Slack.)" in lines
    assert lines[-1] == "<sandbox://company/1001|Open in the CRM>"
    # Delivered, so not a failure; the step ran and the run is over.
    assert metric(world.client, 'cs_alert_failures_total{channel="slack"}') == 0.0

    # Delivered again by another source, and the step runner later: one message, one task.
    champion_joins_acme(world, event_id="pdl-7")
    world.run_due_steps(datetime.now(UTC) + timedelta(days=3))
    assert len(slack.messages) == 1
    assert len(world.tasks("acme")) == 1


def test_an_owner_with_no_email_in_the_crm_is_alerted_in_the_default_channel(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    channel = slack.add_channel("cs-alerts")
    world = make_world(acme_owner="owner-noe", channels=slack_channels(slack, channel))

    task = champion_joins_acme(world)

    assert (task.subject, task.owner_id) == (WELCOME, "owner-noe")
    # Nobody to look up: straight to the channel.
    assert [request.method for request in slack.requests] == ["chat.postMessage"]
    [posted] = slack.messages
    assert (posted.channel, posted.to_user) == (channel, None)
    assert posted.text is not None
    assert "(For Noe Park, who has no email in the CRM.)" in posted.text.splitlines()
    assert metric(world.client, 'cs_alert_failures_total{channel="slack"}') == 0.0


def test_without_a_default_channel_an_owner_with_no_email_is_reported_and_the_task_stands(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    world = make_world(acme_owner="owner-noe", channels=slack_channels(slack))

    task = champion_joins_acme(world)

    assert (task.subject, task.owner_id, task.status) == (WELCOME, "owner-noe", "NOT_STARTED")
    assert slack.requests == []
    assert metric(world.client, 'cs_alert_failures_total{channel="slack"}') == 1.0
    world.run_due_steps(datetime.now(UTC) + timedelta(days=3))
    assert slack.requests == []
    assert len(world.tasks("acme")) == 1


def test_without_a_default_channel_a_csm_not_in_slack_is_reported_and_the_task_stands(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    slack.add_channel("cs-alerts")  # there, but not configured as the default
    world = make_world(channels=slack_channels(slack))

    task = champion_joins_acme(world)

    assert (task.subject, task.owner_id) == (WELCOME, "owner-ana")
    assert slack.messages == []
    assert [request.method for request in slack.requests] == ["users.lookupByEmail"]
    assert metric(world.client, 'cs_alert_failures_total{channel="slack"}') == 1.0


def test_a_csm_in_slack_still_gets_the_dm_not_the_default_channel(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    ana = slack.add_user("ana@vendor.example")
    slack.add_channel("cs-alerts")
    world = make_world(channels=slack_channels(slack, "#cs-alerts"))

    champion_joins_acme(world)

    [posted] = slack.messages
    assert posted.to_user == ana
    assert posted.text is not None
    assert "For CRM user" not in posted.text


# == 4. a held task keeps its lead time when it goes out ========================================

# The rep's usage-drop task is due two working days after it is planned; Ana may get one new
# task a day; the manager's escalation is switched off so only the rep tasks count.
CAPPED = {
    "playbooks": {"usage_drop_checkin": {"tune_steps": {"manager_escalation": {"enabled": False}}}},
    "work": {"caps": {"tasks_per_assignee_per_day": 1, "tasks_per_account_per_week": None}},
}


def flag_three(world: World, now: datetime) -> None:
    """Usage for Ana's three accounts drops at once; the evaluation at `now` judges them."""
    flag(world, now, acme=DROP_60, initech=DROP_60, umbrella=DROP_60)


def new_tasks(world: World, before: list[SandboxTask]) -> list[SandboxTask]:
    seen = {task.crm_id for task in before}
    return [task for task in world.tasks() if task.crm_id not in seen]


def test_a_held_task_released_days_later_is_due_as_long_after_its_release(
    make_world: Callable[..., World],
) -> None:
    world = make_world(**CAPPED)
    flag_three(world, day(0))  # Monday
    [first] = world.tasks()
    assert first.due_date == on(2)  # Wednesday: two days after it was planned
    assert caps.held_count(world.redis) == 2

    # Nobody runs the steps until Wednesday, two days after they were held: one goes out, due
    # two days later, on Friday.
    before = world.tasks()
    world.run_due_steps(day(2))
    [wednesday] = new_tasks(world, before)
    assert wednesday.due_date == on(4)
    assert wednesday.owner_id == "owner-ana"

    # The last one goes out on Thursday: due two days later is Saturday, so the next working
    # day, Monday.
    before = world.tasks()
    world.run_due_steps(day(3))
    [thursday] = new_tasks(world, before)
    assert thursday.due_date == on(7)
    assert caps.held_count(world.redis) == 0
    assert sorted(task.company_id for task in world.tasks()) == ["1001", "1003", "1004"]


def test_a_held_task_is_never_due_on_a_holiday(make_world: Callable[..., World]) -> None:
    world = make_world(**CAPPED | {"work": {**CAPPED["work"], "holidays": [on(3)]}})
    flag_three(world, day(0))  # Monday; Thursday is a holiday
    assert caps.held_count(world.redis) == 2

    before = world.tasks()
    world.run_due_steps(day(1))  # Tuesday: due two days later is the holiday, so Friday
    [tuesday] = new_tasks(world, before)
    assert tuesday.due_date == on(4)


# The due dates a rep reads count working days (docs/playbooks.md: "after_days and due_in_days
# count working days only"). Held over a weekend, or released just before one, the released
# task's lead time is counted in calendar days instead and grows or shrinks.


def test_a_task_held_over_a_weekend_keeps_its_two_working_days_when_released(
    make_world: Callable[..., World],
) -> None:
    world = make_world(**CAPPED)
    flag_three(world, day(4))  # Friday: the first task is due on Tuesday, two working days on
    [first] = world.tasks()
    assert first.due_date == on(8)

    before = world.tasks()
    world.run_due_steps(day(7))  # Monday
    [monday] = new_tasks(world, before)
    assert monday.due_date == on(9)  # Wednesday, two working days on (not Friday)


def test_a_task_released_on_a_friday_keeps_its_two_working_days(
    make_world: Callable[..., World],
) -> None:
    world = make_world(**CAPPED)
    flag_three(world, day(2))  # Wednesday: the first task is due on Friday
    assert [task.due_date for task in world.tasks()] == [on(4)]
    world.run_due_steps(day(3))  # Thursday: one released, due Monday
    before = world.tasks()
    world.run_due_steps(day(4))  # Friday: the last one
    [friday] = new_tasks(world, before)
    assert friday.due_date == on(8)  # Tuesday, two working days on
