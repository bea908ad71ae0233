"""Hostile requests against every JSON webhook: status counts per endpoint, and no 500s.

    python -m bench.fuzz [--requests 20000] [--seed 14]

Issue 14. The real app (create_app, every source switched on, tests/integration/hostile.py) on
an empty Redis database it claims, driven in process through Flask's test client. Each request
is built by a seeded generator: a valid item with one or two fields made hostile (dates at the
calendar's edges, ids that are dicts, booleans or carry control characters, numbers past every
range, deep or long values, random JSON), a batch of such items, or a body that is no JSON at
all; half are signed with the endpoint's own scheme, half not (or signed wrongly). Prints a
table of status codes per endpoint and `fuzz.server_errors`; exits 1 if any request got a 500.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from redis import Redis

from integration.cli.devredis import dev_database
from integration.config.settings import Settings
from tests.integration.hostile import (
    ENDPOINTS,
    ENV,
    HOSTILE_BODIES,
    HOSTILE_KEYS,
    HOSTILE_VALUES,
    hostile_app,
    post,
    valid,
)

ALPHABET = 'ab \n\t\x00\x7f\u00e9\u202e\U0001f600{}[]"\\:'


def random_json(rng: random.Random, depth: int = 0) -> Any:  # noqa: ANN401 - any JSON
    roll = rng.randrange(9 if depth < 4 else 6)
    scalars = [
        None,
        rng.random() < 0.5,
        rng.randint(-(2**70), 2**70),
        rng.uniform(-1e308, 1e308),
        "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(12))),
        rng.choice(HOSTILE_VALUES),
    ]
    if roll < len(scalars):
        return scalars[roll]
    if roll < 8:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_json_key(rng): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_json_key(rng: random.Random) -> str:
    return rng.choice(HOSTILE_KEYS) if rng.random() < 0.5 else str(rng.randrange(100))


def hostile_body(rng: random.Random, endpoint: str, n: int) -> bytes:
    """One request body: mostly hostile JSON items, some bodies that are no JSON at all."""
    roll = rng.random()
    if roll < 0.08:
        return rng.choice(HOSTILE_BODIES)
    if roll < 0.12:
        return rng.randbytes(rng.randrange(64))
    items = []
    for index in range(rng.choice((1, 1, 2, 3, 5))):
        item: Any = valid(endpoint, n * 10 + index)
        for _ in range(rng.choice((0, 1, 1, 2))):  # 0: a valid item, so batches mix good and bad
            key = rng.choice(sorted(item)) if rng.random() < 0.6 else random_json_key(rng)
            item[key] = random_json(rng)
        items.append(item)
    if endpoint == "segment" and rng.random() < 0.2:
        return json.dumps({"batch": items, "context": random_json(rng)}).encode()
    return json.dumps(items[0] if len(items) == 1 and rng.random() < 0.5 else items).encode()


def run(client: Any, rng: random.Random, per_endpoint: int) -> dict[str, Counter[int]]:  # noqa: ANN401
    counts: dict[str, Counter[int]] = {endpoint: Counter() for endpoint in ENDPOINTS}
    for n in range(per_endpoint):
        for endpoint in ENDPOINTS:
            body = hostile_body(rng, endpoint, n)
            signed = rng.random() < 0.5
            answer = post(client, endpoint, body, signed)
            counts[endpoint][answer.status_code] += 1
            if answer.status_code >= 500:
                print("fuzz.server_error", endpoint, signed, body[:300], file=sys.stderr)
    return counts


def report(counts: dict[str, Counter[int]], seconds: float) -> int:
    codes = sorted({code for counter in counts.values() for code in counter})
    print("endpoint".ljust(14) + "".join(str(code).rjust(8) for code in codes) + "total".rjust(8))
    for endpoint, counter in counts.items():
        cells = "".join(str(counter[code]).rjust(8) for code in codes)
        print(endpoint.ljust(14) + cells + str(sum(counter.values())).rjust(8))
    total = sum(sum(counter.values()) for counter in counts.values())
    errors = sum(n for counter in counts.values() for code, n in counter.items() if code >= 500)
    print("fuzz.requests", total)
    print("fuzz.requests_per_s", round(total / seconds))
    print("fuzz.server_errors", errors)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000, help="in all, over 4 endpoints")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    os.environ.update(ENV)  # the secrets the hostile app's config names
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        url = stack.enter_context(dev_database(Settings().redis_url))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        app = stack.enter_context(hostile_app(folder, url))
        logging.disable(logging.WARNING)  # a refused signature or an unmatched id is expected
        started = time.perf_counter()
        counts = run(app.test_client(), rng, -(-args.requests // len(ENDPOINTS)))
        errors = report(counts, time.perf_counter() - started)
        redis_version = Redis.from_url(url).info()["redis_version"]
    print(
        "python",
        platform.python_version(),
        "cpu",
        platform.processor() or "?",
        "redis",
        redis_version,
    )
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
