"""The demo waits for a slow web app instead of failing, and fails in one line when it must."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import pytest

from integration.cli.demo import wait_ready


class SlowApp(BaseHTTPRequestHandler):
    """Stalls its first answers past the client's read timeout, then says 503, then 200."""

    stalls = 2
    unready = 1
    answered: list[int]

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        seen = len(self.answered)
        self.answered.append(seen)
        if seen < self.stalls:
            time.sleep(0.5)  # the server is slow; the test itself never sleeps
        status = 503 if seen < self.stalls + self.unready else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def slow_app() -> Iterator[tuple[str, list[int]]]:
    answered: list[int] = []
    handler = type("Handler", (SlowApp,), {"answered": answered})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/healthz", answered
    server.shutdown()
    server.server_close()


def alive() -> None:
    return


def test_read_timeouts_and_not_ready_answers_are_waited_out(
    slow_app: tuple[str, list[int]],
) -> None:
    url, answered = slow_app
    wait_ready(url, deadline_seconds=10, check_alive=alive, request_timeout=0.1)
    assert len(answered) == 4  # two stalled past the timeout, one 503, then the 200


def test_an_app_never_ready_fails_with_one_line_naming_the_last_answer(
    slow_app: tuple[str, list[int]],
) -> None:
    url, _ = slow_app
    with pytest.raises(click.ClickException) as raised:
        wait_ready(url, deadline_seconds=0.3, check_alive=alive, request_timeout=0.1)
    assert raised.value.format_message() == f"{url} was not ready after 0.3 s (last: ReadTimeout)"


def test_a_process_that_exited_ends_the_wait_at_once(slow_app: tuple[str, list[int]]) -> None:
    url, answered = slow_app

    def web_exited() -> None:
        msg = "the web process exited with code 3: see web.log"
        raise click.ClickException(msg)

    with pytest.raises(click.ClickException, match="the web process exited with code 3"):
        wait_ready(url, deadline_seconds=10, check_alive=web_exited)
    assert answered == []
