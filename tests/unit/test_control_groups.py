"""Control groups, pure: which accounts a playbook holds out (a stable hash, never more than its
share, never for `control: never`), the interval a CS leader reads, and the report's figures
counted from hand-built audit-trail events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from adapters.protocol import CrmAccount
from integration.config.schema import Config
from integration.errors import InvalidConfigError
from integration.risk.assess import RiskAssessment
from integration.risk.reasons import Reason, RiskLevel
from integration.store.history import Event, event
from playbooks.catalogue import resolve_playbooks
from playbooks.control import ControlCount, bucket, in_control, leaves_control
from playbooks.engine import Playbook, runs_to_start, runs_to_treat, shipped_definitions
from playbooks.report import MIN_ACCOUNTS_PER_GROUP, PlaybookFigures, playbook_figures
from playbooks.runs import Run, RunStatus
from playbooks.stats import difference, wilson

MONDAY = date(2026, 11, 23)
START = datetime(2026, 11, 23, 9, tzinfo=UTC)
DROP = Reason("usage_drop", "usage_drop", "Daily active users fell 60%.", RiskLevel.HIGH)


def own(**entry: Any) -> Playbook:
    """The admin's own usage-drop playbook with this entry (control_pct, control...)."""
    raw = {
        "title": "Check in",
        "trigger": {"reasons": ["usage_drop"]},
        "steps": [{"name": "call", "actions": [{"task": {"subject": "s", "body": "b"}}]}],
        **entry,
    }
    [book] = resolve_playbooks(Config.model_validate({"playbooks": {"own": raw}}), shipped={})
    return book


def flagged(account_id: str) -> RiskAssessment:
    return RiskAssessment(account_id, RiskLevel.HIGH, 90, (DROP,), None, None, None)


def crm_account(account_id: str) -> CrmAccount:
    return CrmAccount(f"crm-{account_id}", account_id, "owner-1", account_id, None, {})


def start_all(book: Playbook, account_ids: list[str]) -> list[bool]:
    """Each account's run in turn, counted as advance counts them: control or not."""
    counts: dict[str, ControlCount] = {}
    groups = []
    for account_id in account_ids:
        [run] = runs_to_start(
            None, flagged(account_id), crm_account(account_id), [book], {}, MONDAY, counts
        )
        counts[book.name] = counts.get(book.name, ControlCount()).after(run.control)
        groups.append(run.control)
    return groups


# -- who is held out -----------------------------------------------------------------------------


def test_a_control_group_never_passes_its_share_and_comes_close_to_it() -> None:
    book = own(control_pct=10)
    groups = start_all(book, [f"acct-{n}" for n in range(5000)])
    held_out = 0
    for started, control in enumerate(groups, start=1):
        held_out += control
        assert held_out * 10 <= started  # never more than 10%, at any moment
    assert 450 <= held_out <= 500


def test_the_same_account_is_held_out_of_a_playbook_every_time_and_only_by_its_hash() -> None:
    book = own(control_pct=25)
    room = ControlCount(started=100, control=0)
    chosen = {a for a in (f"acct-{n}" for n in range(400)) if in_control(book.spec, a, room)}
    assert chosen == {a for a in (f"acct-{n}" for n in range(400)) if bucket("own", a) < 2500}
    assert 80 <= len(chosen) <= 120
    # Another playbook hashes the same accounts differently: not the same accounts held out.
    other = {a for a in (f"acct-{n}" for n in range(400)) if bucket("other", a) < 2500}
    assert chosen != other


def test_runs_to_start_marks_a_control_run_only_when_the_group_has_room() -> None:
    book = own(control_pct=50)
    candidate = next(a for a in (f"acct-{n}" for n in range(100)) if bucket("own", a) < 5000)
    kwargs: dict[str, Any] = {"runs": {}, "today": MONDAY}
    [alone] = runs_to_start(None, flagged(candidate), crm_account(candidate), [book], **kwargs)
    assert alone.control is False  # no runs counted yet: one control run would be 100%
    room = {"own": ControlCount(started=3, control=1)}
    [run] = runs_to_start(
        None, flagged(candidate), crm_account(candidate), [book], controls=room, **kwargs
    )
    assert run.control is True
    full = {"own": ControlCount(started=3, control=2)}
    [run] = runs_to_start(
        None, flagged(candidate), crm_account(candidate), [book], controls=full, **kwargs
    )
    assert run.control is False


def test_a_playbook_marked_control_never_holds_no_account_out() -> None:
    # champion_left_multithread and renewal_risk_escalation ship `control: never`.
    shipped = resolve_playbooks(Config(), shipped=shipped_definitions())
    urgent = [book for book in shipped if book.spec.control == "never"]
    assert sorted(book.name for book in urgent) == [
        "champion_left_multithread",
        "renewal_risk_escalation",
    ]
    # Even were a share forced onto it, no account of any hash is held out.
    forced = urgent[0].spec.model_copy(update={"control_pct": 50})
    room = ControlCount(started=1000, control=0)
    assert not any(in_control(forced, f"acct-{n}", room) for n in range(1000))


def test_a_changed_config_treats_the_control_runs_it_no_longer_holds_out() -> None:
    accounts = [f"acct-{n:03d}" for n in range(400)]
    half = own(control_pct=50)
    held = [a for a, control in zip(accounts, start_all(half, accounts), strict=True) if control]
    runs = {
        a: Run(f"own:{a}:usage_drop:{MONDAY}", "own", a, "usage_drop", MONDAY, control=True)
        for a in held
    }

    def treated(book: Playbook) -> list[str]:
        by_name = {"own": book}
        return [a for a in held if runs_to_treat([runs[a]], flagged(a), by_name)]

    # Lowered to a tenth: those whose hash is outside it are treated, the rest stay held out.
    tenth = own(control_pct=10)
    assert set(treated(tenth)) == {a for a in held if bucket("own", a) >= 1000}
    assert 0 < len(held) - len(treated(tenth)) < len(held)
    # `control: never` (or a share of 0): every one of them is treated.
    assert treated(own(control="never")) == treated(own(control_pct=0)) == held
    assert leaves_control(own(control="never").spec, held[0]) == (
        "the playbook is marked control: never"
    )
    # A run whose flag cleared is ended, not treated; an ended run stays as it ended.
    quiet = RiskAssessment(held[0], RiskLevel.NONE, 0, (), None, None, None)
    assert runs_to_treat([runs[held[0]]], quiet, {"own": own(control="never")}) == []
    ended = runs[held[0]].ended(RunStatus.CLEARED, START, "the flag cleared")
    assert runs_to_treat([ended], flagged(held[0]), {"own": own(control="never")}) == []


def test_a_share_on_a_playbook_marked_control_never_is_refused_with_what_to_do() -> None:
    raw = {"playbooks": {"champion_left_multithread": {"control_pct": 10}}}
    with pytest.raises(InvalidConfigError) as caught:
        resolve_playbooks(Config.model_validate(raw), shipped=shipped_definitions())
    [error] = caught.value.errors
    assert error.yaml_path == "playbooks.champion_left_multithread"
    assert error.message == (
        "control_pct is 10 but this playbook says control: never (every account it starts on "
        "is treated): drop control_pct, or set control: sample to keep a control group"
    )


def test_an_admin_may_sample_a_shipped_urgent_playbook_by_saying_so() -> None:
    raw = {"playbooks": {"renewal_risk_escalation": {"control": "sample", "control_pct": 5}}}
    books = resolve_playbooks(Config.model_validate(raw), shipped=shipped_definitions())
    [book] = [b for b in books if b.name == "renewal_risk_escalation"]
    assert (book.spec.control, book.spec.control_pct) == ("sample", 5)


# -- the interval ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "low", "high"),
    [
        # Newcombe (1998), table II, method 10: examples (a), (b), (e), (g).
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((6, 7, 2, 7), 0.0582, 0.8062),
        ((5, 56, 0, 29), -0.0381, 0.1926),
    ],
)
def test_the_difference_interval_is_newcombes_hybrid_score_interval(
    counts: tuple[int, int, int, int], low: float, high: float
) -> None:
    found = difference(*counts)
    assert (round(found.low, 4), round(found.high, 4)) == (low, high)


def test_the_wilson_interval_stays_within_zero_and_one() -> None:
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)


# -- the report's figures, from events -------------------------------------------------------------


def started(account: str, at: datetime, control: bool = False, playbook: str = "own") -> Event:
    return event(
        account,
        "run_started",
        at,
        playbook=playbook,
        run_id=f"{playbook}:{account}:usage_drop:{at.date()}",
        trigger_key="usage_drop",
        reason_code="usage_drop",
        severity="high",
        control=control,
    )


def ended(account: str, at: datetime, start: datetime, playbook: str = "own") -> Event:
    return event(
        account,
        "run_ended",
        at,
        playbook=playbook,
        run_id=f"{playbook}:{account}:usage_drop:{start.date()}",
        status="cleared",
        why="the flag cleared",
    )


def figures_of(
    trails: dict[str, list[Event]], now: datetime, since: datetime | None = None
) -> PlaybookFigures:
    [found] = playbook_figures(trails.items(), now, 30, since, ["own"])
    return found


def test_the_figures_count_runs_steps_completed_tasks_and_what_the_caps_held() -> None:
    trails = {
        "a": [
            started("a", START),
            event("a", "step", START, playbook="own", run_id="r", step="call", outcome="ran"),
            event("a", "action", START, playbook="own", action="task", held=False),
            event("a", "task_completed", START + timedelta(hours=5), playbook="own", seconds=18000),
        ],
        "b": [
            started("b", START),
            event("b", "step", START, playbook="own", step="call", outcome="trigger cleared"),
            event("b", "action", START, playbook="own", action="task", held=True),
            event(
                "b", "action", START + timedelta(days=1), playbook="own", held=True, released=True
            ),
            event("b", "task_completed", START + timedelta(days=3), playbook="own", seconds=259200),
        ],
        "c": [started("c", START, control=True)],
    }
    found = figures_of(trails, START + timedelta(days=3))
    assert (found.fired, found.fired_control, found.steps_run) == (3, 1, 1)
    assert (found.tasks_completed, found.median_completion_seconds) == (2, (18000 + 259200) / 2)
    assert found.tasks_held == 1


def test_a_reason_counts_as_cleared_only_within_the_days_and_open_accounts_wait() -> None:
    now = START + timedelta(days=45)
    late = START + timedelta(days=31)
    recent = START + timedelta(days=40)
    trails = {
        # Cleared in 8 days: the run ended as cleared.
        "a": [started("a", START), ended("a", START + timedelta(days=8), START)],
        # The reason itself cleared (usage recovered) in 29 days.
        "b": [
            started("b", START),
            event("b", "reason_cleared", START + timedelta(days=29), key="usage_drop"),
        ],
        # Cleared, but on day 31: not within 30 days.
        "c": [started("c", START), ended("c", late, START)],
        # Another reason cleared: not this run's.
        "d": [started("d", START), event("d", "reason_cleared", START, key="nps_low")],
        # Started 5 days ago: too soon to tell, cleared or not, left out of the share.
        "e": [started("e", recent)],
        "f": [started("f", recent), ended("f", recent + timedelta(days=1), recent)],
    }
    everyone = figures_of(trails, now).everyone
    assert (everyone.accounts, everyone.decided, everyone.cleared) == (6, 4, 2)
    assert (everyone.still_open, everyone.cleared_so_far) == (2, 1)
    assert everyone.cleared_share == 0.5


def test_a_risk_level_run_clears_when_an_assessment_falls_below_the_level() -> None:
    run = event(
        "a",
        "run_started",
        START,
        playbook="own",
        run_id="own:a:level:high:x",
        trigger_key="level:high",
        reason_code="risk_level",
        severity="high",
        control=False,
    )
    still_high = event("a", "assessment", START + timedelta(days=2), level="high", score=80)
    medium = event("a", "assessment", START + timedelta(days=9), level="medium", score=50)
    now = START + timedelta(days=31)
    assert figures_of({"a": [run, still_high]}, now).everyone.cleared == 0
    assert figures_of({"a": [run, still_high, medium]}, now).everyone.cleared == 1


def test_each_account_counts_once_by_its_first_run_and_renewals_after_it() -> None:
    second = START + timedelta(days=35)
    trails = {
        "a": [
            started("a", START),
            ended("a", START + timedelta(days=2), START),
            started("a", second),
            event("a", "renewal", START + timedelta(days=60), outcome="renewed", value="Renewed"),
        ],
        "b": [
            event("b", "renewal", START - timedelta(days=1), outcome="churned", value="x"),
            started("b", START),
        ],
    }
    found = figures_of(trails, START + timedelta(days=90))
    assert found.fired == 3
    assert (found.everyone.accounts, found.everyone.renewed, found.everyone.churned) == (2, 1, 0)


def test_treated_against_control_is_told_only_with_enough_accounts_in_each_group() -> None:
    now = START + timedelta(days=40)

    def trails(treated: int, treated_cleared: int, control: int, control_cleared: int) -> Any:
        found = {}
        for n in range(treated + control):
            account, is_control = f"acct-{n}", n >= treated
            cleared = n < treated_cleared or treated <= n < treated + control_cleared
            found[account] = [started(account, START, control=is_control)] + (
                [ended(account, START + timedelta(days=5), START)] if cleared else []
            )
        return found

    few = figures_of(trails(30, 20, MIN_ACCOUNTS_PER_GROUP - 1, 2), now)
    assert few.lift is None
    assert (few.control.decided, few.control.cleared) == (9, 2)

    enough = figures_of(trails(56 + 14, 56, 48 + 32, 48), now)  # 56/70 against 48/80
    assert enough.lift is not None
    assert round(enough.lift.estimate, 4) == 0.2
    assert (round(enough.lift.low, 4), round(enough.lift.high, 4)) == (0.0524, 0.3339)


def test_since_leaves_out_what_happened_before_it() -> None:
    trails = {
        "a": [started("a", START), ended("a", START + timedelta(days=2), START)],
        "b": [started("b", START + timedelta(days=10))],
    }
    found = figures_of(trails, START + timedelta(days=50), since=START + timedelta(days=7))
    assert (found.fired, found.everyone.accounts, found.everyone.cleared) == (1, 1, 0)


def test_a_run_or_a_completion_the_trail_names_twice_counts_once() -> None:
    def done(at: datetime, seconds: int | None, task: str) -> Event:
        return event("a", "task_completed", at, playbook="own", task_id=task, seconds=seconds)

    trail = [
        started("a", START),
        started("a", START),  # a retried evaluation
        done(START + timedelta(hours=2), 7200, "t1"),
        done(START + timedelta(hours=9), 32400, "t1"),  # the CRM's completion sent again
        done(START + timedelta(hours=10), None, "t2"),  # made before created times were kept
    ]
    found = figures_of({"a": trail}, START + timedelta(days=40))
    assert (found.fired, found.tasks_completed) == (1, 2)
    assert found.median_completion_seconds == 7200  # the unknown duration is not a zero


def test_a_control_run_switched_to_treated_counts_as_treated() -> None:
    switched = event(
        "b",
        "run_treated",
        START + timedelta(days=3),
        playbook="own",
        run_id=f"own:b:usage_drop:{START.date()}",
        why="the playbook is marked control: never",
    )
    trails = {
        "a": [started("a", START, control=True)],
        "b": [started("b", START, control=True), switched],
    }
    found = figures_of(trails, START + timedelta(days=40))
    assert (found.fired, found.fired_control) == (2, 1)
    assert (found.treated.accounts, found.control.accounts) == (1, 1)
