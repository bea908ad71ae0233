"""Playbook waterfalls as a rep and an admin meet them: steps that wait in Redis and run when due,
exits on clear and on completion, task caps that hold and release, Slack and email alerts.

Usage is posted, signed, to the web app; evaluations and the every-minute step runner are given
their `now`, never slept; CRM changes go through a real RQ worker; the CRM is the sandbox.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from click.testing import CliRunner
from redis import Redis

from integration.cli.main import main
from integration.config.settings import Settings
from integration.jobs.context import Context, build_context, read_config
from integration.store import caps
from tests.conftest import PEOPLE_SECRET_ENV, drain, post_signed, usage_complete_through_yesterday
from tests.fakes.slack_server import FakeSlack
from tests.integration import worlds
from tests.integration.worlds import (
    CHAMPION_JOINED,
    COMPANIES,
    DROP_40,
    DROP_60,
    MONDAY,
    OWNERS,
    RECOVERED,
    SEQUENCE,
    champion_joins_acme,
    day,
    flag,
    metric,
    slack_channels,
)

PRIMARY = {"id": "2002", "email": "lee@acme.example", "name": "Lee Chen", "company_id": "1001"}


# -- the world: tests/integration/worlds.py, with the enrollments, the report and restarts -----


class World(worlds.World):
    def restart(self) -> Context:
        """A new process: its own config read, Redis connection and CRM adapter."""
        fresh = build_context(self.settings, read_config(self.settings.config))
        self.closers.append(fresh.redis.close)
        return fresh

    def enrollments(self) -> list[tuple[str, str, str]]:
        with closing(sqlite3.connect(self.crm.path)) as db:
            return db.execute(
                "select contact_id, sequence_id, owner_id from enrollments order by created_at"
            ).fetchall()

    def report(self) -> str:
        result = CliRunner().invoke(
            main,
            ["report", "--config", str(self.settings.config)],
            env={"REDIS_URL": self.settings.redis_url},
        )
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture
def make_world(
    settings: Settings, webhook_secrets: dict[str, str], redis: Redis
) -> Iterator[Callable[..., World]]:
    """A world built from conftest's config, these top-level keys replaced (playbooks, work,
    owners, channels), on this file's sandbox seed: Ana (whose manager in the CRM is Mia) owns
    three accounts; Ben, with no manager in the CRM, owns Globex. Lee is Acme's primary contact."""
    sandbox_seed = worlds.seed(OWNERS, COMPANIES, [PRIMARY])
    with worlds.worlds(settings, webhook_secrets) as open_world:
        yield lambda **changes: open_world(World, sandbox_seed, **changes)


def with_sequence(**entry: Any) -> dict[str, Any]:
    """The shipped usage-drop playbook with its automated touch switched on."""
    return {"usage_drop_checkin": {"sequence_id": SEQUENCE, **entry}}


def figures(report: str) -> tuple[int, int]:
    """(steps waiting, tasks held by a cap) as `integration report` states them."""
    waiting = re.search(r"(\d+) (?:playbook )?step\(s\) waiting", report)
    held = re.search(r"(\d+) task\(s\) held by a cap", report)
    assert waiting, report
    assert held, report
    return int(waiting[1]), int(held[1])


# -- the usage-drop waterfall ------------------------------------------------------------------


def test_usage_drop_enrolls_the_primary_contact_then_asks_the_rep_then_the_manager(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=with_sequence())
    flag(world, day(0), acme=DROP_60)

    # At once: Lee, Acme's primary contact, is enrolled in the sequence, sent as Ana. No task.
    assert world.enrollments() == [("2002", SEQUENCE, "owner-ana")]
    assert world.tasks() == []
    assert world.steps("acme") == [["automated_touch", day(0).isoformat(), "ran"]]
    assert figures(world.report()) == (1, 0)

    # Five working days: the rest of this week and the weekend bring nothing.
    for offset in (1, 2, 3, 4, 5, 6):
        assert world.run_due_steps(day(offset, 18)) == 0
    assert world.tasks() == []

    # Monday week, usage still down: the rep's call, due in two working days.
    assert world.run_due_steps(day(7)) == 1
    [rep] = world.tasks()
    assert rep.subject == "Check in with Acme Analytics: product usage is down 60%"
    assert (rep.owner_id, rep.company_id, rep.status, rep.priority, rep.task_type) == (
        "owner-ana",
        "1001",
        "NOT_STARTED",
        "high",
        "call",
    )
    assert rep.due_date == (MONDAY + timedelta(days=9)).isoformat()
    assert world.enrollments() == [("2002", SEQUENCE, "owner-ana")]  # not enrolled again

    # Three working days later (Thursday), the rep's task still open: Ana's manager, Mia.
    for offset in (8, 9):
        assert world.run_due_steps(day(offset, 18)) == 0
    assert world.run_due_steps(day(10)) == 1
    rep_again, manager = world.tasks()
    assert rep_again == rep
    assert manager.subject == (
        "Escalation: Acme Analytics usage still down 60%, check-in task still open"
    )
    assert (manager.owner_id, manager.company_id) == ("mgr-mia", "1001")
    assert "still open" in manager.body
    assert MONDAY.isoformat() in manager.body  # when the playbook started

    # Each step with the time it ran; the waterfall is over and nothing more comes of it.
    assert world.steps("acme") == [
        ["automated_touch", day(0).isoformat(), "ran"],
        ["rep_task", day(7).isoformat(), "ran"],
        ["manager_escalation", day(10).isoformat(), "ran"],
    ]
    assert world.run("acme")["status"] == "done"
    assert world.run_due_steps(day(40)) == 0
    assert len(world.tasks()) == 2
    assert figures(world.report()) == (0, 0)


def test_working_days_skip_weekends_and_the_configured_holidays(
    make_world: Callable[..., World],
) -> None:
    monday_week, thursday_week = MONDAY + timedelta(days=7), MONDAY + timedelta(days=10)
    world = make_world(
        playbooks=with_sequence(),
        work={"holidays": [monday_week.isoformat(), thursday_week.isoformat()]},
    )
    flag(world, day(0), acme=DROP_60)

    assert world.run_due_steps(day(7)) == 0  # a holiday
    assert world.run_due_steps(day(8)) == 1
    [rep] = world.tasks()
    # Two working days after Tuesday, the Thursday holiday skipped: Friday.
    assert rep.due_date == (MONDAY + timedelta(days=11)).isoformat()

    # Three working days after Tuesday: Wednesday, Friday, and (past the weekend) Monday.
    for offset in (9, 10, 11, 12, 13):
        assert world.run_due_steps(day(offset, 18)) == 0
    assert world.run_due_steps(day(14)) == 1
    assert [task.owner_id for task in world.tasks()] == ["owner-ana", "mgr-mia"]
    assert [step[:2] for step in world.steps("acme")] == [
        ["automated_touch", day(0).isoformat()],
        ["rep_task", day(8).isoformat()],
        ["manager_escalation", day(14).isoformat()],
    ]


def test_a_crm_without_managers_escalates_to_the_manager_the_config_names(
    make_world: Callable[..., World],
) -> None:
    # No sequence id: the automated touch is left out and the rep's task comes at once.
    world = make_world(owners={"fallback_owner": "owner-ana", "managers": {"owner-ben": "mgr-max"}})
    flag(world, day(0), globex=DROP_60)
    [rep] = world.tasks()
    assert (rep.owner_id, rep.company_id) == ("owner-ben", "1002")
    assert world.enrollments() == []

    assert world.run_due_steps(day(2, 18)) == 0
    assert world.run_due_steps(day(3)) == 1
    assert [task.owner_id for task in world.tasks()] == ["owner-ben", "mgr-max"]


def test_each_step_runs_once_however_often_and_by_however_many_workers_it_is_run(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=with_sequence())
    flag(world, day(0), acme=DROP_60)
    world.evaluate(day(0, 15), "acme")  # judged again the same day: not a new trigger
    world.evaluate(day(3), "acme")  # and later, still down
    assert world.enrollments() == [("2002", SEQUENCE, "owner-ana")]

    # Two workers of their own (connection, CRM adapter) run the due steps at the same moment.
    workers = [world.restart(), world.restart()]
    start = threading.Barrier(len(workers))
    ran: list[int] = []
    failed: list[BaseException] = []

    def work(context: Context) -> None:
        try:
            start.wait(timeout=30)
            ran.append(world.run_due_steps(day(7), context))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failed.append(exc)

    threads = [threading.Thread(target=work, args=(context,)) for context in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failed == []
    assert sorted(ran) == [0, 1]
    assert len(world.tasks()) == 1

    # The same minute again, and after a restart: nothing new.
    assert world.run_due_steps(day(7)) == 0
    assert world.run_due_steps(day(7, 10), world.restart()) == 0
    assert len(world.tasks()) == 1

    # A restarted process runs the escalation when it is due, once.
    assert world.run_due_steps(day(10), world.restart()) == 1
    assert world.run_due_steps(day(10)) == 0
    assert world.run_due_steps(day(11), world.restart()) == 0
    assert [task.owner_id for task in world.tasks()] == ["owner-ana", "mgr-mia"]
    assert [step[0] for step in world.steps("acme")] == [
        "automated_touch",
        "rep_task",
        "manager_escalation",
    ]


# -- exit on clear ------------------------------------------------------------------------------


def test_usage_recovering_cancels_the_escalation_and_notes_the_open_task(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=with_sequence())
    flag(world, day(0), acme=DROP_60)
    world.run_due_steps(day(7))
    [rep] = world.tasks()

    # The six missing people were back all last week after all: usage recovered.
    flag(world, day(8), acme=RECOVERED)

    [note] = world.notes("acme")
    assert note.splitlines()[:2] == [
        f"Usage drop check-in: the usage drop flag that started this playbook on "
        f"{MONDAY.isoformat()} cleared on {(MONDAY + timedelta(days=8)).isoformat()}, so its "
        "remaining steps are cancelled.",
        "1 task(s) from it are still open: close them if the conversation is done.",
    ]
    [still] = world.tasks()
    assert still.status == "NOT_STARTED"  # the rep decides: the note says what changed
    assert world.run("acme")["status"] == "cleared"
    assert world.steps("acme")[-1] == ["exit", day(8).isoformat(), "the flag cleared"]

    # No escalation, then or later; judging it again adds no second note.
    for offset in (10, 11, 20):
        assert world.run_due_steps(day(offset)) == 0
    world.evaluate(day(9), "acme")
    assert world.tasks() == [still]
    assert len(world.notes("acme")) == 1
    assert figures(world.report()) == (0, 0)


def test_usage_recovering_completes_the_open_task_when_the_playbook_says_so(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=with_sequence(exit={"when_trigger_clears": "complete"}))
    flag(world, day(0), acme=DROP_60)
    world.run_due_steps(day(7))

    flag(world, day(8), acme=RECOVERED)

    [rep] = world.tasks()
    assert rep.status == "COMPLETED"
    assert world.notes("acme") == []
    assert world.run_due_steps(day(10)) == 0
    assert len(world.tasks()) == 1


def test_usage_recovering_before_the_rep_step_means_the_rep_is_never_asked(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=with_sequence())
    flag(world, day(0), acme=DROP_60)

    flag(world, day(3), acme=RECOVERED)

    for offset in (7, 10, 14):
        assert world.run_due_steps(day(offset)) == 0
    assert world.tasks() == []
    assert world.notes("acme") == []  # no open task to tell about
    assert [step[0] for step in world.steps("acme")] == ["automated_touch", "exit"]


# -- exit on completion -------------------------------------------------------------------------


def test_the_rep_completing_the_task_in_the_crm_cancels_the_managers_escalation(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=with_sequence())
    flag(world, day(0), acme=DROP_60)
    world.run_due_steps(day(7))
    [rep] = world.tasks()

    world.complete_in_crm(rep, day(8, 11))

    assert world.run("acme")["status"] == "completed"
    assert world.steps("acme")[-1] == ["exit", day(8, 11).isoformat(), "the rep completed the task"]
    for offset in (10, 11, 20):
        assert world.run_due_steps(day(offset)) == 0
    [done] = world.tasks()
    assert (done.crm_id, done.status) == (rep.crm_id, "COMPLETED")
    assert world.notes("acme") == []
    assert figures(world.report()) == (0, 0)


# -- caps ---------------------------------------------------------------------------------------


def test_a_cap_holds_the_overflow_until_the_next_working_day_highest_risk_first(
    make_world: Callable[..., World],
) -> None:
    world = make_world(
        playbooks={"low_license_utilization": {"enabled": False}},
        work={"caps": {"tasks_per_assignee_per_day": 1}},
    )
    # Friday's sweep flags three of Ana's accounts at once. Umbrella is the riskiest (its seats
    # lie unused too), Initech the least.
    world.post_usage("acme", DROP_60)
    world.post_usage("initech", DROP_40)
    world.post_usage("umbrella", DROP_60, seats=20)
    usage_complete_through_yesterday(world.redis)
    world.evaluate(day(4), "acme", "initech", "umbrella")

    [first] = world.tasks()
    assert (first.company_id, first.owner_id) == ("1001", "owner-ana")
    assert figures(world.report())[1] == 2

    # Not the same day, not at the weekend.
    for moment in (day(4, 17), day(5), day(6)):
        assert world.run_due_steps(moment) == 0
    assert len(world.tasks()) == 1

    # Monday: the riskiest held task, and only one (the cap); nothing more that day.
    world.run_due_steps(day(7))
    world.run_due_steps(day(7, 16))
    assert [task.company_id for task in world.tasks()] == ["1001", "1004"]
    assert figures(world.report())[1] == 1

    # Tuesday, by a restarted worker: the last one. Never lost, never doubled.
    world.run_due_steps(day(8), world.restart())
    world.run_due_steps(day(8, 16))
    tasks = world.tasks()
    assert [task.subject for task in tasks] == [
        "Check in with Acme Analytics: product usage is down 60%",
        "Check in with Umbrella: product usage is down 60%",
        "Check in with Initech: product usage is down 40%",
    ]
    assert {task.owner_id for task in tasks} == {"owner-ana"}
    assert all(task.due_date >= (MONDAY + timedelta(days=8)).isoformat() for task in tasks[1:])
    assert figures(world.report())[1] == 0
    assert caps.held_count(world.redis) == 0


# A held task must go out even when its run has ended DONE (its last step ran, or a guard ended
# it): only a cleared flag or a completed task makes it one not to send.


def test_an_escalation_held_by_the_cap_goes_out_the_next_working_day(
    make_world: Callable[..., World],
) -> None:
    world = make_world(
        owners={"fallback_owner": "owner-ana", "managers": {"owner-ben": "mgr-mia"}},
        work={"caps": {"tasks_per_assignee_per_day": 1}},
    )
    # Ana's Acme and Ben's Globex drop on the same Monday: each rep has a task at once...
    flag(world, day(0), acme=DROP_60, globex=DROP_60)
    assert sorted(str(task.owner_id) for task in world.tasks()) == ["owner-ana", "owner-ben"]

    # ...and on Thursday both escalate to Mia, whose cap is one a day: one waits for Friday.
    world.run_due_steps(day(3))
    assert [task.owner_id for task in world.tasks()].count("mgr-mia") == 1
    assert figures(world.report())[1] == 1

    world.run_due_steps(day(4))
    escalated = [task.company_id for task in world.tasks() if task.owner_id == "mgr-mia"]
    assert sorted(escalated) == ["1001", "1002"]
    assert figures(world.report())[1] == 0


def test_a_rep_task_still_held_when_its_escalation_falls_due_is_not_lost(
    make_world: Callable[..., World],
) -> None:
    # Escalation after one working day; Ana may get one new task a day.
    world = make_world(
        playbooks={"usage_drop_checkin": {"tune_steps": {"manager_escalation": {"after_days": 1}}}},
        work={"caps": {"tasks_per_assignee_per_day": 1}},
    )
    flag(world, day(0), acme=DROP_60, initech=DROP_60, umbrella=DROP_60)
    assert len(world.tasks()) == 1
    for offset in (1, 2, 3, 4):
        world.run_due_steps(day(offset))

    # Whatever became of the escalations, each of Ana's three accounts got its check-in task.
    checkins = [task.company_id for task in world.tasks() if task.owner_id == "owner-ana"]
    assert sorted(checkins) == ["1001", "1003", "1004"]


# -- Slack --------------------------------------------------------------------------------------


def test_a_past_champion_joining_is_a_slack_dm_to_the_csm_found_by_email_beside_the_task(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    ana = slack.add_user("Ana@vendor.example")
    world = make_world(channels=slack_channels(slack))

    task = champion_joins_acme(world)

    # No CSM is mapped, so the CSM's work goes to the owner, Ana: in the CRM and in Slack.
    assert (
        task.subject == "Congratulate Priya Natarajan on joining Acme Analytics and book a check-in"
    )
    assert task.owner_id == "owner-ana"
    [posted] = slack.messages
    assert posted.to_user == ana
    assert posted.channel.startswith("D")
    assert posted.text is not None
    # The reason as the CRM shows it, what to do, and a link to the record.
    [reason] = [
        line
        for line in world.crm.company_properties("1001")["churn_risk_reasons"].splitlines()
        if "Priya Natarajan" in line
    ]
    assert posted.text.startswith(reason)
    assert "Congratulate them and book a check-in" in posted.text
    assert posted.text.endswith("<sandbox://company/1001|Open in the CRM>")
    [lookup] = slack.calls("users.lookupByEmail")
    assert lookup.args == {"email": "ana@vendor.example"}

    # Delivered again, and run again later: still one message, one task.
    post_signed(
        world.client,
        "/webhooks/job-changes",
        world.secrets[PEOPLE_SECRET_ENV],
        CHAMPION_JOINED | {"event_id": "pdl-7", "source": "pdl"},
    )
    drain(world.redis)
    world.run_due_steps(datetime.now(UTC) + timedelta(days=3))
    assert len(slack.messages) == 1
    assert len(world.tasks("acme")) == 1


def test_a_playbook_pointed_at_a_channel_posts_there_without_looking_anyone_up(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    channel = slack.add_channel("cs-alerts")
    world = make_world(
        channels=slack_channels(slack),
        playbooks={"champion_joined_welcome": {"slack_channel": "#cs-alerts"}},
    )

    champion_joins_acme(world)

    [posted] = slack.messages
    assert (posted.channel, posted.to_user) == (channel, None)
    assert posted.text is not None
    assert posted.text.startswith("Priya Natarajan")
    assert posted.text.endswith("<sandbox://company/1001|Open in the CRM>")
    assert [request.method for request in slack.requests] == ["chat.postMessage"]


def test_a_csm_missing_from_slack_is_reported_and_the_crm_task_still_stands(
    make_world: Callable[..., World], slack: FakeSlack
) -> None:
    world = make_world(channels=slack_channels(slack))

    task = champion_joins_acme(world)

    assert task.owner_id == "owner-ana"
    assert slack.messages == []
    assert [request.method for request in slack.requests] == ["users.lookupByEmail"]
    assert metric(world.client, 'cs_alert_failures_total{channel="slack"}') == 1.0
    assert world.steps("acme", "champion_joined_welcome")[0][::2] == ["welcome", "ran"]
    assert world.run("acme", "champion_joined_welcome")["status"] == "done"


# -- email --------------------------------------------------------------------------------------

FROM = "alerts@cs.example.com"
# An admin's own playbook in config.yaml: an email to the owner beside the CRM task.
EMAIL_PLAYBOOK = {
    "usage_drop_checkin": {"enabled": False},
    "usage_drop_email": {
        "title": "Usage drop email",
        "trigger": {"reasons": ["usage_drop"]},
        "steps": [
            {
                "name": "tell_owner",
                "actions": [
                    {
                        "email": {
                            "subject": "{{ account.name }}: usage down "
                            "{{ reason.details.drop_pct | round | int }}%",
                            "body": "{{ reason.text }}\nPlease call them this week.",
                        }
                    },
                    {
                        "task": {
                            "subject": "Call {{ account.name }} about their usage",
                            "body": "Why: {{ reason.text }}",
                        }
                    },
                ],
            }
        ],
    },
}


@dataclass
class Mailbox:
    """A real SMTP server on loopback (aiosmtpd), started when a test says: it keeps what it
    accepts and refuses recipients when told to."""

    port: int
    received: list[Envelope] = field(default_factory=list)
    rcpt_answer: str = "250 OK"
    servers: list[Controller] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_answer

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def start(self) -> None:
        server = Controller(self, hostname="127.0.0.1", port=self.port)
        server.start()
        self.servers.append(server)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(_free_port())
    yield box
    for server in box.servers:
        server.stop()


def email_world(make_world: Callable[..., World], mailbox: Mailbox) -> World:
    relay = {"host": "127.0.0.1", "port": mailbox.port, "starttls": False}
    return make_world(
        channels={"email": {**relay, "from_address": FROM, "timeout_seconds": 5}},
        playbooks=EMAIL_PLAYBOOK,
    )


def test_an_admins_playbook_emails_the_owner_a_readable_message_with_the_link(
    make_world: Callable[..., World], mailbox: Mailbox
) -> None:
    mailbox.start()
    world = email_world(make_world, mailbox)

    flag(world, day(0), acme=DROP_60)

    [envelope] = mailbox.received
    assert (envelope.mail_from, envelope.rcpt_tos) == (FROM, ["ana@vendor.example"])
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert (message["From"], message["To"], message["Subject"]) == (
        FROM,
        "ana@vendor.example",
        "Acme Analytics: usage down 60%",
    )
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().splitlines() == [
        "Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the "
        "last 7 days.",
        "Please call them this week.",
        "",
        "sandbox://company/1001",
    ]
    [task] = world.tasks()
    assert (task.subject, task.owner_id) == ("Call Acme Analytics about their usage", "owner-ana")

    world.run_due_steps(day(0, 10))
    assert len(mailbox.received) == 1


def test_an_email_the_relay_refuses_is_reported_and_the_task_stands(
    make_world: Callable[..., World], mailbox: Mailbox
) -> None:
    mailbox.rcpt_answer = "550 5.1.1 <ana@vendor.example>: no such mailbox"
    mailbox.start()
    world = email_world(make_world, mailbox)

    flag(world, day(0), acme=DROP_60)

    assert mailbox.received == []
    [task] = world.tasks()
    assert task.subject == "Call Acme Analytics about their usage"
    assert metric(world.client, 'cs_alert_failures_total{channel="email"}') == 1.0
    assert world.run("acme", "usage_drop_email")["status"] == "done"
    world.run_due_steps(day(1))
    assert len(world.tasks()) == 1


def test_an_email_relay_that_is_down_does_not_hold_up_the_task_and_the_email_follows(
    make_world: Callable[..., World], mailbox: Mailbox
) -> None:
    world = email_world(make_world, mailbox)  # nothing listens on the relay's port yet

    flag(world, day(0), acme=DROP_60)

    [task] = world.tasks()
    assert task.subject == "Call Acme Analytics about their usage"
    assert world.run("acme", "usage_drop_email")["status"] == "active"  # the email is owed

    # The relay is back: the next minute sends the email, and no second task.
    mailbox.start()
    assert world.run_due_steps(day(0, 9) + timedelta(minutes=1)) == 1
    [envelope] = mailbox.received
    assert envelope.rcpt_tos == ["ana@vendor.example"]
    assert world.tasks() == [task]
    assert world.run("acme", "usage_drop_email")["status"] == "done"
    assert world.run_due_steps(day(0, 9) + timedelta(minutes=2)) == 0
    assert len(mailbox.received) == 1


def test_a_cap_holding_the_rep_task_does_not_cancel_its_escalation(
    make_world: Callable[..., World],
) -> None:
    world = make_world(
        playbooks={"usage_drop_checkin": {"tune_steps": {"manager_escalation": {"after_days": 1}}}},
        work={"caps": {"tasks_per_assignee_per_day": 1}},
    )
    flag(world, day(0), acme=DROP_60, initech=DROP_60, umbrella=DROP_60)
    for offset in range(1, 12):
        world.run_due_steps(day(offset))

    # Nobody completed anything: every account's open check-in reaches Mia in the end.
    escalated = [task.company_id for task in world.tasks() if task.owner_id == "mgr-mia"]
    assert sorted(escalated) == ["1001", "1003", "1004"]
