"""Write the sample usage under integration/cli/examples/usage/ (run once; the output is committed).

Three accounts over 56 days ending 2026-11-22: Acme drops from about 12 to 4 daily users for the
last 9 days (a usage-drop flag), Globex is steady with a weekly pattern (no flag), and Initech, a
3-seat account, has two of its three users on vacation for the last 6 days (no flag: a small
account must stay down for three weeks).
"""

import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

END = date(2026, 11, 22)
DAYS = 56
OUT = Path(__file__).resolve().parent.parent / "integration" / "cli" / "examples" / "usage"


def events(account: str, users_on, seats: int, rng: random.Random) -> list[dict]:
    out = []
    for offset in range(DAYS - 1, -1, -1):
        day = END - timedelta(days=offset)
        for user in users_on(day, offset, rng):
            moment = datetime.combine(day, time(9 + rng.randrange(8), rng.randrange(60)), UTC)
            for name in ("login",) + tuple(
                rng.sample(["report_viewed", "dashboard_shared", "export"], 1)
            ):
                out.append(
                    {
                        "event_id": f"{account}-{len(out) + 1:05d}",
                        "account_id": account,
                        "user_id": f"{account}-u{user:02d}",
                        "event": name,
                        "timestamp": moment.isoformat().replace("+00:00", "Z"),
                        "seats": seats,
                    }
                )
    return out


def acme(day, offset, rng):
    count = 4 if offset < 9 else 12 - (day.weekday() >= 5) * 8
    return range(count)


def globex(day, offset, rng):
    return range(18 if day.weekday() < 5 else 5)


def initech(day, offset, rng):
    return range(1 if offset < 6 else 3)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    for name, pattern, seats in (
        ("acme", acme, 25),
        ("globex", globex, 30),
        ("initech", initech, 3),
    ):
        (OUT / f"{name}.json").write_text(
            json.dumps(events(name, pattern, seats, rng), indent=0) + "\n"
        )


if __name__ == "__main__":
    main()
