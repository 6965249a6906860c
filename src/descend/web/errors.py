"""Errors that read well: 422 naming the field, 413 for big bodies, 408 for bodies that never arrive.

* :class:`FieldError`: bad input found while computing, answered as 422 with
  the field's location;
* :func:`validation_errors`: pydantic's errors as one sentence per field
  (a union of four types that all refused a value is one sentence, not four;
  a body that is not JSON says where it breaks);
* :class:`BodyLimits`: ASGI middleware answering 413 to a body over the limit,
  whether declared in ``content-length`` or streamed, and 408 to a body that
  stops arriving for ``timeout_s`` seconds.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError


class FieldError(Exception):
    """Bad input found while computing: answered as 422 naming ``loc``."""

    def __init__(self, loc: tuple[str | int, ...], msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.kind = kind


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "runs", 0, "hyper", "lr")`` -> ``"runs.0.hyper.lr"``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    """422 with pydantic-style ``detail`` and a one-line ``message``."""
    def sentence(e: dict[str, Any]) -> str:
        name = field_name(e["loc"])
        return e["msg"] if e["msg"].startswith(name + " ") else f"{name}: {e['msg']}"

    return JSONResponse(status_code=422, content={"detail": errors, "message": "; ".join(map(sentence, errors))})


def field_error(e: FieldError) -> JSONResponse:
    return unprocessable([{"loc": list(e.loc), "msg": e.msg, "type": e.kind}])


def message(status: int, text: str, **extra: Any) -> JSONResponse:
    """A plain error answer: ``{"detail": text, "message": text}``."""
    return JSONResponse(status_code=status, content={"detail": text, "message": text, **extra})


# ---------------------------------------------------------------- pydantic errors


def shown_value(value: Any) -> str:
    """A value as JSON spells it: ``NaN``, ``Infinity``, ``true``, ``[1, 2]``, ``"adam"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 40 else f'"{value[:37]}..."'
    if isinstance(value, (list, tuple)):
        return "a list" if len(value) > 4 else "[" + ", ".join(shown_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "an object"
    return str(value)


def scalar(value: Any, *, lists: bool = False) -> Any:
    """``value`` if it is one option value (finite number, bool, short text, null), else one sentence.

    Used as a pydantic ``AfterValidator`` on ``Any`` so that a bad value gets
    one error, not one per member of a union.
    """
    ok = value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= 64)
    if isinstance(value, int) and not isinstance(value, bool):
        ok = abs(value) <= 2**53
    elif isinstance(value, float):
        ok = math.isfinite(value)
    elif lists and isinstance(value, list) and len(value) <= 64:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if ok:
        return value
    allowed = "a finite number, true/false, a name or null" + (", or a list of numbers" if lists else "")
    raise PydanticCustomError("bad_value", "must be {allowed}; got {got}",
                              {"allowed": allowed, "got": shown_value(value)})


def number(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number is due (pydantic would read ``true`` as 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, got {got}", {"got": shown_value(value)})
    return value


# pydantic's refusals of a value outside its bounds
BOUND_KINDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def validation_errors(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors as the API reports them: one per field, each one sentence."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for e in raw:
        loc = list(e.get("loc", ()))
        kind = str(e.get("type", ""))
        msg = str(e.get("msg", ""))
        if kind == "json_invalid":
            pos = next((p for p in loc[1:] if isinstance(p, int)), None)
            reason = str((e.get("ctx") or {}).get("error", "")).strip()
            where = f" at character {pos}" if pos is not None else ""
            msg = f"body is not valid JSON{where}" + (f": {reason[0].lower()}{reason[1:]}" if reason else "")
            loc = ["body"]
        elif kind in ("missing", "extra_forbidden"):
            msg = "required" if kind == "missing" else "is not a field here"
        elif kind in BOUND_KINDS and "input" in e:  # pydantic names the bound, not the value refused
            got = e["input"]
            number = isinstance(got, (int, float)) and not isinstance(got, bool)
            msg = f"{msg}, got {got:g}" if number else f"{msg}, got {shown_value(got)}"
        key = tuple(loc)
        if key in seen:  # a union whose members all refused the value: keep the first sentence
            continue
        seen.add(key)
        out.append({"loc": loc, "msg": msg, "type": kind})
    return out


# ---------------------------------------------------------------- body size and time


class BodyLimits:
    """ASGI middleware: 413 for bodies over ``max_bytes`` (declared or streamed), 408 for stalled ones."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 5.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reply(send, 400, "content-length must be an integer")
                    return
        if declared is not None and declared > self.max_bytes:
            await self._reply(send, 413, self._too_large(declared))
            return
        seen = 0
        body_done = scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE")
        replied = False
        started = False

        async def limited_receive() -> dict:
            nonlocal seen, body_done, replied
            if replied:
                return {"type": "http.disconnect"}
            if body_done:  # the body is in: what follows is the client going away
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                got = f"{seen} of {declared}" if declared is not None else f"{seen}"
                await self._reply(send, 408, f"the request body stopped arriving: {got} bytes came, "
                                             f"then nothing for {self.timeout_s:g} s", started)
                replied = True
                return {"type": "http.disconnect"}
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    await self._reply(send, 413, self._too_large(seen, streamed=True), started)
                    replied = True
                    return {"type": "http.disconnect"}
                if not msg.get("more_body", False):
                    body_done = True
            return msg

        async def tracking_send(msg: dict) -> None:
            nonlocal started
            if replied:  # answered already: the app's own answer to the cut-off body is dropped
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        await self.app(scope, limited_receive, tracking_send)

    def _too_large(self, size: int, streamed: bool = False) -> str:
        more = "more than " if streamed else ""
        return f"request body of {more}{size} bytes is over the limit of {self.max_bytes} bytes"

    @staticmethod
    async def _reply(send: Callable, status: int, text: str, started: bool = False) -> None:
        if started:
            return
        response = message(status, text)
        headers = [*response.raw_headers, (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
