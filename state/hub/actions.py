"""Actions on another host's experiments, through the hub (design §11).

A dashboard cannot act on a remote file: it asks that host's agent. Requests go
into ``P:actions:<host>``, a stream read by the host's agents through one consumer
group (a request is delivered to one agent, and stays pending until acknowledged,
never lost as pub/sub would lose it). Each request is a step of the same flow as a
local action: ``plan`` (the agent plans with the runtime code the CLI runs and
keeps the plan under an id) and ``execute`` (the agent executes *that* plan, which
refuses if the file moved since). The agent answers on a list the asker waits on
with ``BLPOP`` and on the record (its ``answer`` field). A request carries a
deadline on Redis's clock: an agent that reads it later drops it, so a dashboard
that gave up waiting never sees its request carried out behind its back.

Answers come from the hub, untrusted: their sizes are capped and every field typed.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from state.hub.connection import HubError
from state.hub.schema import Hub

PLAN = "plan"
EXECUTE = "execute"
#: Requests kept in a host's stream (approximately): only pending ones matter.
ACTIONS_MAXLEN = 1000
GROUP = "agents"
MAX_ANSWER_BYTES = 256 * 1024
MAX_REQUEST_BYTES = 16 * 1024
#: How long an answer waits in the hub for its asker.
ANSWER_TTL_S = 60
#: How long a plan's description (and an execution's "begun" mark) stays in the hub.
PLAN_TTL_S = 600
#: Requests claimed per round when an agent takes over what a dead one left pending.
CLAIM_COUNT = 50


@dataclass(frozen=True)
class ActionRequest:
    id: str
    action: str
    """``resume``, ``mark_stale`` or ``stop`` (``state.sources`` names)."""
    mode: str
    """``plan`` or ``execute``."""
    source: str
    key: str
    deadline_ms: int
    """Redis's time (ms) after which the agent drops the request unanswered."""
    plan_id: str | None = None
    """For ``execute``: the plan the agent answered with."""


@dataclass(frozen=True)
class ActionAnswer:
    id: str
    ok: bool
    """False: refused, conflicted or failed; ``text`` says why."""
    text: str
    title: str = ""
    lines: tuple[str, ...] = ()
    """The plan, as the confirmation dialog shows it."""
    refusal: str | None = None
    """The plan is shown but cannot be executed, for this reason."""
    plan_id: str | None = None
    confirm_label: str = "Confirm"
    warning: bool = False
    """Done, but with something the user should read (a journal line not written)."""


_REQUEST = TypeAdapter(ActionRequest)
_ANSWER = TypeAdapter(ActionAnswer)


def new_id() -> str:
    return secrets.token_hex(8)


def encode(value: ActionRequest | ActionAnswer) -> str:
    adapter = _REQUEST if isinstance(value, ActionRequest) else _ANSWER
    return json.dumps(adapter.dump_python(value, mode="json"), separators=(",", ":"))


def decode_request(raw: bytes | str) -> ActionRequest | None:
    if len(raw) > MAX_REQUEST_BYTES:
        return None
    try:
        return _REQUEST.validate_json(raw)
    except (ValidationError, ValueError):
        return None


def decode_answer(raw: bytes | str, request_id: str) -> ActionAnswer:
    """The agent's answer; one that is not valid, or answers another request, becomes a failure that says so."""
    if len(raw) > MAX_ANSWER_BYTES:
        return ActionAnswer(request_id, False, f"the agent's answer is larger than {MAX_ANSWER_BYTES // 1024} KiB")
    try:
        answer = _ANSWER.validate_json(raw)
    except (ValidationError, ValueError) as exc:
        return ActionAnswer(request_id, False, f"the agent's answer is not valid ({type(exc).__name__})")
    if answer.id != request_id:
        return ActionAnswer(request_id, False, "the agent answered another request")
    return answer


class HubActions:
    """Both ends of the actions stream on one hub: ask and wait (dashboards), read and answer (agents)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def stream_key(self, host: str) -> str:
        return f"{self.hub.prefix}:actions:{host}"

    def answer_key(self, request_id: str) -> str:
        return f"{self.hub.prefix}:answer:{request_id}"

    def plan_key(self, host: str, plan_id: str) -> str:
        return f"{self.hub.prefix}:plan:{host}:{plan_id}"

    def begun_key(self, request_id: str) -> str:
        return f"{self.hub.prefix}:begun:{request_id}"

    def agent_key(self, host: str) -> str:
        """What the host's agent last said of itself (its sources): kept after its lease lapses, for the refusal."""
        return f"{self.hub.prefix}:agent:{host}"

    def now_ms(self) -> int:
        seconds, micros = self.hub.call(lambda c: c.time())
        return int(seconds) * 1000 + int(micros) // 1000

    # -- dashboards -------------------------------------------------------------------------------
    def ask(self, host: str, request: ActionRequest, wait_s: float) -> ActionAnswer | None:
        """Send ``request`` to ``host``'s agents and wait up to ``wait_s`` for the answer (None: none came)."""
        self.hub.call(lambda c: c.xadd(self.stream_key(host), {"r": encode(request)}, maxlen=ACTIONS_MAXLEN, approximate=True))
        found = self.hub.call(lambda c: c.blpop([self.answer_key(request.id)], timeout=max(1, round(wait_s))))
        return None if found is None else decode_answer(found[1], request.id)

    def late_answer(self, request_id: str, stop: threading.Event, wait_s: float = ANSWER_TTL_S) -> ActionAnswer | None:
        """The answer to a request its asker stopped waiting for, if one comes within ``wait_s`` (None: none, or ``stop``).

        An agent that read the request before its deadline finishes it whatever the
        asker does; its answer is worth showing when it comes.
        """
        deadline = time.monotonic() + wait_s
        while not stop.is_set() and time.monotonic() < deadline:
            found = self.hub.call(lambda c: c.blpop([self.answer_key(request_id)], timeout=1))
            if found is not None:
                return decode_answer(found[1], request_id)
        return None

    def agent_sources(self, host: str) -> list[str]:
        """The locations the host's agent last published (empty when unknown or unreadable)."""
        raw = self.hub.call(lambda c: c.get(self.agent_key(host)))
        try:
            doc = json.loads(raw) if raw and len(raw) < MAX_REQUEST_BYTES else {}
            locations = doc.get("locations", []) if isinstance(doc, dict) else []
            return [x for x in locations if isinstance(x, str)][:16]
        except (ValueError, RecursionError):
            return []

    # -- agents --------------------------------------------------------------------------------------
    def join(self, host: str) -> None:
        """The host's consumer group, made if missing, from the stream's start.

        Dashboards send only while the host's lease lives, so what the stream holds
        before the group exists was sent while this agent was taking the lease: it is
        answered (or answered "expired"), not skipped.
        """
        try:
            self.hub.call(lambda c: c.xgroup_create(self.stream_key(host), GROUP, id="0", mkstream=True))
        except HubError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, host: str, consumer: str, block_ms: int) -> list[tuple[str, ActionRequest | None]]:
        """New requests for ``host`` (entry id, request; None where unreadable), waiting up to ``block_ms``."""
        found = self.hub.call(
            lambda c: c.xreadgroup(GROUP, consumer, {self.stream_key(host): ">"}, count=10, block=block_ms)
        )
        out = []
        for _stream, entries in found or ():
            for entry_id, fields in entries:
                raw = fields.get(b"r", b"")
                out.append((entry_id.decode(), decode_request(raw) if raw else None))
        return out

    def answer(self, host: str, entry_id: str, answer: ActionAnswer, record_key: str | None) -> None:
        """Answer the asker (and the record, for anyone looking), then acknowledge the request."""
        text = encode(answer)

        def send(c: Any) -> None:
            pipe = c.pipeline(transaction=True)
            pipe.rpush(self.answer_key(answer.id), text)
            pipe.expire(self.answer_key(answer.id), ANSWER_TTL_S)
            if record_key is not None:
                pipe.eval("if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'answer', ARGV[1]) end", 1, record_key, text)
            pipe.xack(self.stream_key(host), GROUP, entry_id)
            pipe.execute()

        self.hub.call(send)

    def claim_stale(self, host: str, consumer: str, min_idle_ms: int) -> list[tuple[str, ActionRequest | None]]:
        """Requests delivered to an agent of ``host`` and left unacknowledged for ``min_idle_ms``, now ``consumer``'s.

        Only one agent serves a host (its lease says which), so a request pending that
        long was read by an agent that died before answering it.
        """
        out: list[tuple[str, ActionRequest | None]] = []
        start = "0-0"
        while len(out) < 10 * CLAIM_COUNT:
            found = self.hub.call(
                lambda c: c.xautoclaim(self.stream_key(host), GROUP, consumer, min_idle_ms, start_id=start, count=CLAIM_COUNT)
            )
            for entry_id, fields in found[1] or ():
                raw = (fields or {}).get(b"r", b"")
                out.append((entry_id.decode(), decode_request(raw) if raw else None))
            start = found[0].decode() if isinstance(found[0], bytes) else str(found[0])
            if start == "0-0":
                break
        return out

    def answered_on_record(self, record_key: str, request_id: str) -> bool:
        """Whether the record already carries the answer to ``request_id`` (it was done: never do it again)."""
        raw = self.hub.call(lambda c: c.hget(record_key, "answer"))
        if not raw or len(raw) > MAX_ANSWER_BYTES:
            return False
        try:
            return _ANSWER.validate_json(raw).id == request_id
        except (ValidationError, ValueError):
            return False

    def begin(self, request_id: str) -> bool:
        """Mark ``request_id`` as being done; False when an agent began it before (it must not run twice)."""
        return bool(self.hub.call(lambda c: c.set(self.begun_key(request_id), b"1", nx=True, ex=PLAN_TTL_S)))

    def keep_plan(self, host: str, plan_id: str, described: dict[str, Any]) -> None:
        """What a plan was made on, kept in the hub: an agent that restarts can still execute it if nothing moved."""
        self.hub.call(lambda c: c.set(self.plan_key(host, plan_id), json.dumps(described, separators=(",", ":")), ex=PLAN_TTL_S))

    def kept_plan(self, host: str, plan_id: str) -> dict[str, Any] | None:
        raw = self.hub.call(lambda c: c.get(self.plan_key(host, plan_id)))
        if not raw or len(raw) > MAX_REQUEST_BYTES:
            return None
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        return doc if isinstance(doc, dict) else None

    def ack(self, host: str, entry_id: str) -> None:
        self.hub.call(lambda c: c.xack(self.stream_key(host), GROUP, entry_id))

    def described(self, hosts: Iterable[str]) -> set[str]:
        """The hosts whose agent has described itself on this hub: each did so once it had republished everything."""
        names = sorted(set(hosts))
        if not names:
            return set()

        def read(c: Any) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for host in names:
                pipe.exists(self.agent_key(host))
            return pipe.execute()

        return {host for host, found in zip(names, self.hub.call(read)) if found}

    def describe_self(self, host: str, locations: list[str]) -> None:
        self.hub.call(lambda c: c.set(self.agent_key(host), json.dumps({"locations": locations})))


__all__ = [
    "EXECUTE", "PLAN", "ActionAnswer", "ActionRequest", "HubActions", "decode_answer", "decode_request", "encode", "new_id",
]
