"""A fake of Slack's Web API on loopback that checks each request as Slack would.

slack_sdk's WebClient sends through urllib, so the sender is pointed at this real HTTP server
(`base_url`). It serves the two methods the Slack channel uses and answers in Slack's shapes:

- https://docs.slack.dev/apis/web-api: every method at /api/<method>, GET or POST; arguments as
  query string, application/x-www-form-urlencoded or multipart/form-data, or a JSON object
  (application/json), in which case the token must come in `Authorization: Bearer`.
- Errors come back as HTTP 200 with {"ok": false, "error": "<code>"}, except rate limiting:
  HTTP 429 with Retry-After (https://docs.slack.dev/apis/web-api/rate-limits).
- https://docs.slack.dev/reference/methods/users.lookupByEmail: needs `email`; answers
  {"ok": true, "user": {"id": ...}} or users_not_found.
- https://docs.slack.dev/reference/methods/chat.postMessage: needs `channel` and `text` or
  `blocks`; answers {"ok": true, "channel", "ts", "message"}. A user id as the channel posts to
  the app's DM with that person (a D... channel).

Every request is recorded, with the problems found in it; posted messages are kept in order.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn

from werkzeug.datastructures import MultiDict
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

Json = dict[str, Any]
TEST_TOKEN = "xoxb-test-token"
TEAM_ID = "T0FAKE0001"
BOT_ID = "B0FAKE0001"
BOT_USER_ID = "U0FAKEBOT1"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# https://docs.slack.dev/apis/web-api (common errors): the charsets Slack accepts.
CHARSETS = frozenset({"utf-8", "iso-8859-1"})
# https://docs.slack.dev/reference/methods/chat.postMessage: 40,000 characters at most.
TEXT_LIMIT = 40_000
# https://docs.slack.dev/reference/block-kit/blocks: 50 blocks a message; section text 3,000.
BLOCKS_LIMIT = 50
SECTION_TEXT_LIMIT = 3000
BLOCK_TYPES = frozenset(
    {"section", "actions", "context", "divider", "header", "image", "rich_text"}
)


@dataclass
class SlackUser:
    id: str
    email: str
    name: str
    deleted: bool = False


@dataclass
class SlackConversation:
    id: str
    name: str
    member: bool = True
    archived: bool = False
    user: str | None = None  # set on a DM: the person it is with


@dataclass
class RecordedRequest:
    """One call as the fake received it."""

    method: str  # the Web API method, e.g. chat.postMessage
    http_method: str
    content_type: str
    authorization: str | None
    args: Json
    json_body: bool = False
    status: int = 0
    response: Json = field(default_factory=dict)


@dataclass
class PostedMessage:
    channel: str
    ts: str
    text: str | None
    blocks: list[Json] | None
    to_user: str | None  # the person's user id when posted to a DM


class _Answer(Exception):  # noqa: N818 - a control-flow answer, not an error of the fake
    def __init__(self, body: Json, status: int = 200, headers: dict[str, str] | None = None):
        super().__init__(body.get("error"))
        self.body, self.status, self.headers = body, status, headers or {}


def _refuse(code: str, **extra: Any) -> NoReturn:
    """Answer {"ok": false, "error": code} with HTTP 200, as Slack does."""
    raise _Answer({"ok": False, "error": code, **extra})


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class FakeSlack:
    """users.lookupByEmail and chat.postMessage, in memory, with scripted 429s, 5xxs and stalls."""

    def __init__(self, *, token: str = TEST_TOKEN, host: str = "127.0.0.1", port: int = 0):
        self.token, self.host, self.port = token, host, port
        self.users: dict[str, SlackUser] = {}  # by lower-cased email
        self.conversations: dict[str, SlackConversation] = {}  # by id
        self.messages: list[PostedMessage] = []
        self.requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._scripts: dict[str, list[tuple[int, float, float]]] = {}  # status, retry, stall
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeSlack:
        self._stop.clear()
        self._server = make_server(
            self.host, self.port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(0.02), daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        """What `SlackSender(base_url=...)` takes, as https://slack.com/api/ in production."""
        return f"http://{self.host}:{self.port}/api/"

    # -- seeding and scripting -------------------------------------------------------------------

    def add_user(self, email: str, *, name: str | None = None, deleted: bool = False) -> str:
        user_id = f"U{next(self._ids):08d}"
        self.users[email.lower()] = SlackUser(user_id, email, name or email.split("@")[0], deleted)
        return user_id

    def add_channel(self, name: str, *, member: bool = True, archived: bool = False) -> str:
        channel_id = f"C{next(self._ids):08d}"
        self.conversations[channel_id] = SlackConversation(channel_id, name, member, archived)
        return channel_id

    def rate_limit(self, method: str, retry_after_seconds: int = 30, times: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with Retry-After."""
        self._scripts.setdefault(method, []).extend([(429, retry_after_seconds, 0.0)] * times)

    def fail(self, method: str, status: int = 503, times: int = 1) -> None:
        """The next `times` calls of `method` get an HTTP error page, as a load balancer sends."""
        self._scripts.setdefault(method, []).extend([(status, 0, 0.0)] * times)

    def stall(self, method: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls of `method` answer only after `seconds` (or at shutdown)."""
        self._scripts.setdefault(method, []).extend([(0, 0, seconds)] * times)

    def calls(self, method: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.method == method]

    # -- the server ------------------------------------------------------------------------------

    def _wsgi(self, environ: Json, start_response: Any) -> Any:
        request = Request(environ)
        response = self._respond(request)
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        if not request.path.startswith("/api/") or request.method not in {"GET", "POST"}:
            return Response("not found", status=404, content_type="text/plain")
        method = request.path.removeprefix("/api/")
        record = RecordedRequest(
            method=method,
            http_method=request.method,
            content_type=request.headers.get("Content-Type", ""),
            authorization=request.headers.get("Authorization"),
            args={},
        )
        try:
            record.args, record.json_body = self._arguments(request)
            self._authenticate(record)
            self._scripted(method)
            handler = {"users.lookupByEmail": self._lookup, "chat.postMessage": self._post}.get(
                method
            )
            if handler is None:
                _refuse("unknown_method", req_method=method)
            with self._lock:
                answer = _Answer(handler(record.args))
        except _Answer as reply:
            answer = reply
        record.status, record.response = answer.status, answer.body
        with self._lock:
            self.requests.append(record)
        if answer.status >= 500:
            return Response("<html>upstream error</html>", answer.status, content_type="text/html")
        return Response(
            json.dumps(answer.body),
            answer.status,
            headers=answer.headers,
            content_type="application/json; charset=utf-8",
        )

    def _arguments(self, request: Request) -> tuple[Json, bool]:
        """The call's arguments, and whether they came as JSON (the token must then be a header)."""
        args: Json = dict(request.args.items())
        if request.method == "GET" or not request.content_length:
            return args, False
        mimetype = request.mimetype
        if not mimetype:
            _refuse("missing_post_type")
        charset = request.mimetype_params.get("charset")
        if charset is not None and charset.lower() not in CHARSETS:
            _refuse("invalid_charset")
        if mimetype == "application/json":
            try:
                body = json.loads(request.get_data(as_text=True))
            except ValueError:
                _refuse("invalid_json")
            if not isinstance(body, dict):
                _refuse("json_not_object")
            return {**args, **body}, True
        if mimetype in FORM_TYPES:
            form: MultiDict[str, str] = request.form
            if not form:
                _refuse("invalid_form_data")
            return {**args, **dict(form.items())}, False
        _refuse("invalid_post_type")

    def _authenticate(self, record: RecordedRequest) -> None:
        token: str | None = None
        header = record.authorization
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme != "Bearer" or not value:
                _refuse("not_authed")
            token = value
        elif not record.json_body:
            token = record.args.get("token")
        if not token:
            _refuse("not_authed")
        if token != self.token:
            _refuse("invalid_auth")

    def _scripted(self, method: str) -> None:
        with self._lock:
            queue = self._scripts.get(method)
            script = queue.pop(0) if queue else None
        if script is None:
            return
        status, retry_after, stall = script
        if stall:
            self._stop.wait(stall)
        if status == 429:
            headers = {"Retry-After": str(retry_after)}
            raise _Answer({"ok": False, "error": "ratelimited"}, 429, headers)
        if status:
            raise _Answer({"ok": False, "error": "internal_error"}, status)

    # -- methods ---------------------------------------------------------------------------------

    def _lookup(self, args: Json) -> Json:
        email = args.get("email")
        if not isinstance(email, str) or not email:
            _refuse("invalid_arguments", response_metadata=_missing("email"))
        user = self.users.get(email.lower())
        if user is None:
            _refuse("users_not_found")
        return {"ok": True, "user": _user_json(user)}

    def _post(self, args: Json) -> Json:
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            _refuse("channel_not_found")
        text = args.get("text")
        blocks = _blocks(args.get("blocks"))
        if not (isinstance(text, str) and text.strip()) and not blocks:
            _refuse("no_text")
        if isinstance(text, str) and len(text) > TEXT_LIMIT:
            _refuse("msg_too_long")
        conversation = self._conversation(channel)
        ts = f"{1_700_000_000 + next(self._ts)}.000100"
        message: Json = {
            "type": "message",
            "subtype": "bot_message",
            "text": text or "",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "ts": ts,
        }
        if blocks:
            message["blocks"] = blocks
        self.messages.append(
            PostedMessage(conversation.id, ts, text, blocks or None, conversation.user)
        )
        return {"ok": True, "channel": conversation.id, "ts": ts, "message": message}

    def _dm(self, user: SlackUser) -> SlackConversation:
        """The app's DM with `user`, opened on first use as Slack does."""
        for conversation in self.conversations.values():
            if conversation.user == user.id:
                return conversation
        opened = SlackConversation(f"D{next(self._ids):08d}", user.id, user=user.id)
        self.conversations[opened.id] = opened
        return opened

    def _conversation(self, channel: str) -> SlackConversation:
        """The conversation `channel` names: an id, a #name, or a user id (the app's DM)."""
        if channel in self.conversations:
            found = self.conversations[channel]
        elif user := next((u for u in self.users.values() if u.id == channel), None):
            if user.deleted:
                _refuse("channel_not_found")
            found = self._dm(user)
        else:
            name = channel.removeprefix("#")
            found_named = [c for c in self.conversations.values() if c.name == name and not c.user]
            if not found_named:
                _refuse("channel_not_found")
            found = found_named[0]
        if found.archived:
            _refuse("is_archived")
        if not found.member:
            _refuse("not_in_channel")
        return found


def _missing(argument: str) -> Json:
    return {"messages": [f"[ERROR] missing required field: {argument}"]}


def _user_json(user: SlackUser) -> Json:
    return {
        "id": user.id,
        "team_id": TEAM_ID,
        "name": user.name,
        "deleted": user.deleted,
        "real_name": user.name,
        "is_bot": False,
        "profile": {
            "email": user.email,
            "real_name": user.name,
            "display_name": user.name,
        },
    }


def _blocks(raw: Any) -> list[Json]:
    """`blocks` as Slack reads it: a JSON array (a string of one in a form), each block valid."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            _refuse("invalid_blocks_format")
    if not isinstance(raw, list) or len(raw) > BLOCKS_LIMIT:
        _refuse("invalid_blocks_format")
    for block in raw:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            _refuse("invalid_blocks")
        if block["type"] == "section" and not _section_ok(block):
            _refuse("invalid_blocks")
    return raw


def _section_ok(block: Json) -> bool:
    text = block.get("text")
    if text is None:
        return bool(block.get("fields"))
    return (
        isinstance(text, dict)
        and text.get("type") in {"plain_text", "mrkdwn"}
        and isinstance(text.get("text"), str)
        and 0 < len(text["text"]) <= SECTION_TEXT_LIMIT
    )
