"""Reading a JSON body without letting it crash us: depth first, then the parse, then Unicode.

`json.loads` recurses once per nesting level, so 5,000 `[` raise RecursionError (a 500). The
depth is therefore measured first by a cheap pre-scan that needs no recursion and no parse:
strings are cut out with one regular expression, every character but brackets is dropped, and
the running sum of +1/-1 over what is left gives the depth (all in C: `re`, `itertools`). A
library was not worth it: orjson stops at 1,024 levels but reads numbers and Unicode differently
from the stdlib json that the signatures and the rest of the code were written against.

The size limit is Flask's MAX_CONTENT_LENGTH (webhooks/app.py): a longer body is answered 413
before it is read. After the parse, NaN/Infinity (accepted by `json.loads`, refused by JSON) and
lone UTF-16 surrogates (`"\\ud800"`, which Redis cannot store as UTF-8) are refused too.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from integration.errors import PayloadError

# Deep enough for any payload we take (a Segment message with nested properties is under 10),
# far below the interpreter's recursion limit, so the parse and a job's pickling never recurse
# too far.
MAX_DEPTH = 32
TOO_DEEP = "JSON nested too deeply"
# A string, or an unterminated one and everything after it (the parser stops there anyway). It
# always matches at a quote, so the scan is linear: a pattern that can fail at a quote would be
# tried again at every later `\"` of an unterminated string, quadratic in the body's size.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in `text`, brackets inside strings not counted."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_depth(text: str, source: str) -> None:
    """PayloadError (400) when the body nests deeper than MAX_DEPTH; nothing parsed."""
    if nesting_depth(text) > MAX_DEPTH:
        raise PayloadError(source, "(body)", TOO_DEEP)


def loads(text: str, source: str, scan_depth: bool = True) -> Any:  # noqa: ANN401 - JSON is any shape until validated
    """The parsed body, or PayloadError naming `(body)`.

    `scan_depth=False` is for a signed body on the hot path (/webhooks/usage, where the scan
    would cost twice the parse): the parser's own guard then bounds the depth, raising
    RecursionError at the interpreter's limit, a 400 here. Whatever parses here parses again
    in the fold, whose stack is shallower than a request's."""
    if scan_depth:
        check_depth(text, source)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, NaN, or an int past 4,300 digits
        raise PayloadError(source, "(body)", f"not valid JSON: {exc}") from exc
    except RecursionError as exc:  # unreachable below MAX_DEPTH; kept as the last guard
        raise PayloadError(source, "(body)", TOO_DEEP) from exc
    if _SURROGATE_ESCAPE.search(text):
        try:
            _check_unicode(value, source)
        except RecursionError as exc:  # as deep as the parser goes: the re-encoding is deeper
            raise PayloadError(source, "(body)", TOO_DEEP) from exc
    return value


def _refuse_constant(name: str) -> Any:  # noqa: ANN401 - json's hook signature
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _check_unicode(value: Any, source: str) -> None:  # noqa: ANN401 - parsed JSON
    """Escaped surrogate pairs (emoji) are fine; a lone half is not text."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = "holds a lone UTF-16 surrogate escape (\\ud800-\\udfff); send valid Unicode"
        raise PayloadError(source, "(body)", msg) from exc
