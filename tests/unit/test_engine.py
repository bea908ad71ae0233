from __future__ import annotations

from datetime import date

from adapters.protocol import CrmAccount
from integration.config.schema import PlaybookSettings
from integration.risk.assess import RiskAssessment
from integration.risk.reasons import Reason, RiskLevel
from playbooks.actions import CreateNote, CreateTask, EnrollInSequence
from playbooks.engine import load_catalogue, next_working_day, plan_actions, resolve_playbooks

TODAY = date(2026, 11, 20)  # a Friday
ACCOUNT = CrmAccount(crm_id="1001", name="Acme Analytics", owner_id="owner-ana")
DROP = Reason(
    "usage_drop",
    "usage_drop",
    "Daily active users fell 59% below their 4-week normal (4.0 vs 9.7 a day) over the "
    "last 7 days.",
    RiskLevel.MEDIUM,
    {"drop_pct": 58.8},
)
CHAMPION = Reason(
    "champion_left",
    "champion_left:sam@acme.example",
    "Champion Sam Lee left the account.",
    RiskLevel.HIGH,
    {
        "person": "Sam Lee",
        "email": "sam@acme.example",
        "new_title": "CTO",
        "new_company": "Initech",
    },
)
PLAYBOOKS = resolve_playbooks(load_catalogue(), {})


def assessed(*reasons: Reason) -> RiskAssessment:
    return RiskAssessment(
        "acme",
        RiskLevel.HIGH if reasons else RiskLevel.NONE,
        35,
        tuple(reasons),
        -59.0,
        40.0,
        TODAY,
    )


def test_a_new_usage_drop_plans_one_check_in_task_for_the_owner() -> None:
    [task] = plan_actions(None, assessed(DROP), ACCOUNT, PLAYBOOKS, {}, TODAY, None)
    assert task.subject == "Check in with Acme Analytics: product usage is down 59%"
    assert task.owner_id == "owner-ana"
    assert task.body.startswith("Why: Daily active users fell 59% below their 4-week normal")
    assert "Suggested next step: call your main contact at Acme Analytics" in task.body
    assert (task.priority, task.task_type) == ("high", "call")
    assert task.due_date == date(2026, 11, 23)  # due Sunday, moved to Monday
    assert task.idempotency_key == "usage_drop_checkin:acme:usage_drop:2026-11-20"


def test_a_flag_already_raised_before_plans_nothing() -> None:
    assert plan_actions(assessed(DROP), assessed(DROP), ACCOUNT, PLAYBOOKS, {}, TODAY, None) == []


def test_the_cooldown_stops_a_flapping_flag_from_creating_a_second_task() -> None:
    fired = {"usage_drop_checkin": date(2026, 11, 10)}
    assert plan_actions(None, assessed(DROP), ACCOUNT, PLAYBOOKS, fired, TODAY, None) == []
    fired_long_ago = {"usage_drop_checkin": date(2026, 10, 1)}
    assert (
        len(plan_actions(None, assessed(DROP), ACCOUNT, PLAYBOOKS, fired_long_ago, TODAY, None))
        == 1
    )


def test_champion_left_plans_a_multithread_task_tied_to_the_contact_and_a_note() -> None:
    task, note = plan_actions(
        assessed(DROP), assessed(DROP, CHAMPION), ACCOUNT, PLAYBOOKS, {}, TODAY, None
    )
    assert isinstance(task, CreateTask)
    assert task.subject == "Sam Lee left Acme Analytics: find a new champion"
    assert task.contact_email == "sam@acme.example"
    assert "New role: CTO at Initech." in task.body
    assert "Also on this account:\n- Daily active users fell 59%" in task.body
    assert task.idempotency_key == (
        "champion_left_multithread:acme:champion_left:sam@acme.example:once"
    )
    assert isinstance(note, CreateNote)
    assert note.body == (
        "Champion change: Champion Sam Lee left the account.\n"
        "The account is flagged as a churn risk and its owner has a task to find a new champion."
    )
    assert note.idempotency_key == task.idempotency_key + ":note"


def test_a_playbook_with_a_sequence_also_enrolls_the_contact_with_a_fallback_task() -> None:
    chosen = {"champion_left_multithread": PlaybookSettings(sequence_id="4455")}
    playbooks = resolve_playbooks(load_catalogue(), chosen)
    actions = plan_actions(None, assessed(CHAMPION), ACCOUNT, playbooks, {}, TODAY, None)
    [enroll] = [a for a in actions if isinstance(a, EnrollInSequence)]
    assert (enroll.sequence_id, enroll.contact_email, enroll.owner_id) == (
        "4455",
        "sam@acme.example",
        "owner-ana",
    )
    assert enroll.fallback.subject == "Start sequence 4455 for Sam Lee"


def test_an_account_without_owner_goes_to_the_fallback_owner() -> None:
    ownerless = CrmAccount(crm_id="1003", name="Initech", owner_id=None)
    [task] = plan_actions(None, assessed(DROP), ownerless, PLAYBOOKS, {}, TODAY, "owner-ben")
    assert task.owner_id == "owner-ben"


def test_admin_overrides_and_disabled_playbooks_apply() -> None:
    chosen = {
        "usage_drop_checkin": PlaybookSettings(priority="low", due_in_days=0),
        "champion_left_multithread": PlaybookSettings(enabled=False),
    }
    playbooks = resolve_playbooks(load_catalogue(), chosen)
    actions = plan_actions(None, assessed(DROP, CHAMPION), ACCOUNT, playbooks, {}, TODAY, None)
    assert [(a.playbook, a.priority, a.due_date) for a in actions if isinstance(a, CreateTask)] == [
        ("usage_drop_checkin", "low", TODAY)
    ]


def test_weekend_due_dates_move_to_monday() -> None:
    assert next_working_day(date(2026, 11, 21)) == date(2026, 11, 23)
    assert next_working_day(date(2026, 11, 24)) == date(2026, 11, 24)
