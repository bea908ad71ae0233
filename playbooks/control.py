"""Control groups: which accounts a playbook leaves untouched, so that `integration report` can
tell whether it works.

Pure. An account is a candidate for a playbook's control group when a stable hash of the
playbook and the account falls within the playbook's `control_pct` (so the same account stays
in the same group for that playbook across runs, workers and restarts). A candidate is kept as
control only while the group stays within that share of every run the playbook started, counted
as `ControlCount` (kept in Redis by integration/store/control_groups.py, which checks the same
rule again atomically): a control group is never larger than its configured share.

The admin changes the config under running groups. A control run whose account the playbook no
longer holds out (`control: never`, control_pct 0, or a lower control_pct whose share its hash
bucket is now outside) is switched to treated when an evaluation next judges the account
(`leaves_control`; playbooks/starts.py saves it): its first step runs, and the report counts it
as treated from then on. Accounts still inside the share stay held out. Raising control_pct
holds out only accounts whose runs start after it: a run already treated is never stopped.

Critical reasons. A playbook the admin marks `control: never` is never sampled, whatever
`control_pct` says (config validation refuses the two together): the account flagged by the
reason that triggers it is always treated by it. The shipped ones are the critical reasons:
champion_left (champion_left_multithread) and renewal_near (renewal_risk_escalation). Such an
account may still be in the control group of another playbook that samples (a usage check-in,
say): holding it out there leaves its critical playbook's work untouched, and keeping it out of
every other control group would make those groups healthier than their treated accounts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from integration.config.playbooks import PlaybookSpec

# The hash picks one of this many buckets: control_pct has two decimals of resolution.
HASH_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class ControlCount:
    """A playbook's runs so far: all started (treated and control), and the control ones."""

    started: int = 0
    control: int = 0

    def after(self, control: bool) -> ControlCount:
        return ControlCount(self.started + 1, self.control + int(control))


def samples(spec: PlaybookSpec) -> bool:
    """Whether the playbook keeps a control group at all."""
    return spec.control == "sample" and spec.control_pct > 0


def share_basis_points(spec: PlaybookSpec) -> int:
    """control_pct in hundredths of a percent (what the hash and Redis compare in integers)."""
    return round(spec.control_pct * 100) if samples(spec) else 0


def bucket(playbook: str, account_id: str) -> int:
    """The account's stable place, 0..HASH_BUCKETS-1, for this playbook."""
    digest = hashlib.sha256(f"{playbook}\x00{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % HASH_BUCKETS


def within_share(count: ControlCount, basis_points: int) -> bool:
    """One more control run keeps the group within its share of the runs started."""
    return (count.control + 1) * HASH_BUCKETS <= basis_points * (count.started + 1)


def in_control(spec: PlaybookSpec, account_id: str, count: ControlCount) -> bool:
    """Whether the run the playbook is about to start on the account is a control run."""
    share = share_basis_points(spec)
    return share > 0 and bucket(spec.name, account_id) < share and within_share(count, share)


def leaves_control(spec: PlaybookSpec, account_id: str) -> str | None:
    """Why a control run of the playbook on the account is to be treated now (the admin
    changed `control` or lowered `control_pct`), or None while the account stays held out."""
    if spec.control == "never":
        return "the playbook is marked control: never"
    share = share_basis_points(spec)
    if share == 0:
        return "the playbook keeps no control group now (control_pct 0)"
    if bucket(spec.name, account_id) >= share:
        return f"control_pct lowered to {spec.control_pct:g}%: the account is outside the share"
    return None
