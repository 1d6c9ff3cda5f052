"""Records, verdicts and GPU snapshots as hub text, and back.

What an agent publishes is read by every dashboard of the fleet, and anything
read from the hub is untrusted input, exactly like a file: sizes are capped
before parsing, every field is validated by type, and a value that fails
becomes a broken row with the reason (it never blanks the picture). Paths in a
record name places on the publishing host: they are shown, never opened here,
so the log path is dropped on the way in.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from state.native import OwnerIdentity
from state.record import BrokenRecord, Entry, ExperimentRecord
from state.telemetry import GpuAttribution, GpuSnapshot
from state.verdict import Liveness, StaleVerdict

#: Largest record summary or verdict accepted from the hub (a summary holds one row per process).
MAX_SUMMARY_BYTES = 4 * 1024 * 1024
MAX_VERDICT_BYTES = 64 * 1024
MAX_GPUS_BYTES = 1024 * 1024
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_RECORD = TypeAdapter(ExperimentRecord)
# state.record names OwnerIdentity for type checkers only (a reader of files never loads the
# pydantic models): the adapter is given it here.
_RECORD.rebuild(_types_namespace={"OwnerIdentity": OwnerIdentity})
_BROKEN = TypeAdapter(BrokenRecord)
_GPUS = TypeAdapter(GpuSnapshot)
_ATTRIBUTIONS = TypeAdapter(dict[int, GpuAttribution])


def valid_host_name(name: object) -> bool:
    """Host names are part of hub keys and row keys: letters, digits, ``._-``, at most 64."""
    return isinstance(name, str) and bool(_SAFE_NAME.match(name))


def host_name_from(text: str) -> str:
    """A host name made valid (``gpu 01`` -> ``gpu_01``), for agents whose hostname is odd."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64].lstrip("._-")
    return cleaned or "host"


def encode_entry(entry: Entry) -> str:
    if isinstance(entry, BrokenRecord):
        body = _BROKEN.dump_python(entry, mode="json")
        return json.dumps({"kind": "broken", "entry": body}, separators=(",", ":"))
    body = _RECORD.dump_python(entry, mode="json")
    return json.dumps({"kind": "record", "entry": body}, separators=(",", ":"))


def decode_entry(raw: bytes | str | None, *, key: str, host: str) -> Entry:
    """The entry a hub hash holds, keyed ``key`` and labelled with ``host``; a broken one if unreadable."""

    def broken(reason: str) -> BrokenRecord:
        # Made only for a broken record: a Path for every good one was a fifth of decoding it.
        return BrokenRecord(key, Path(f"{host}:{key}"), reason, host=host)

    if raw is None:
        return broken("hub record has no summary")
    if len(raw) > MAX_SUMMARY_BYTES:
        return broken(f"hub record larger than {MAX_SUMMARY_BYTES // (1024 * 1024)} MiB")
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("kind") not in ("record", "broken") or not isinstance(doc.get("entry"), dict):
            raise ValueError("not an expwatch hub record")
        body: dict[str, Any] = {**doc["entry"], "key": key, "host": host}
        body.pop("broken", None)
        if doc["kind"] == "broken":
            return _BROKEN.validate_python(body)
        body["log_path"] = None
        return _RECORD.validate_python(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first.get("loc", ())) or "record"
        return broken(f"invalid hub record ({exc.error_count()} errors; first at {at}: {first.get('msg')})")
    except (ValueError, TypeError, RecursionError) as exc:
        return broken(f"unreadable hub record: {type(exc).__name__}: {str(exc)[:200]}")


def encode_verdict(verdict: StaleVerdict | None) -> str:
    if verdict is None:
        return ""
    return json.dumps({"liveness": verdict.liveness.value, "reason": verdict.reason, "evidence": list(verdict.evidence)}, separators=(",", ":"))


def decode_verdict(raw: bytes | str | None) -> StaleVerdict | None:
    """The host's verdict, or None when absent or not valid (the caller shows that as unknown)."""
    if not raw or len(raw) > MAX_VERDICT_BYTES:
        return None
    try:
        doc = json.loads(raw)
        liveness = Liveness(doc["liveness"])
        reason = doc["reason"]
        evidence = doc.get("evidence", [])
        if not isinstance(reason, str) or not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
            return None
        return StaleVerdict(liveness, reason, tuple(evidence))
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def encode_gpus(snapshot: GpuSnapshot, attributions: dict[int, GpuAttribution]) -> str:
    """A host's GPU snapshot with the attributions judged there (only that host can confirm its PIDs)."""
    return json.dumps(
        {"snapshot": _GPUS.dump_python(snapshot, mode="json"), "attributions": _ATTRIBUTIONS.dump_python(attributions, mode="json")},
        separators=(",", ":"),
    )


def decode_gpus(raw: bytes | str) -> tuple[GpuSnapshot, dict[int, GpuAttribution]]:
    """A host's GPUs as published; an unreadable one becomes a snapshot whose status says why (never raises)."""
    now = datetime.now(timezone.utc)
    if len(raw) > MAX_GPUS_BYTES:
        return GpuSnapshot(now, (), f"GPU snapshot larger than {MAX_GPUS_BYTES // 1024} KiB"), {}
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not an expwatch GPU snapshot")
        return _GPUS.validate_python(doc.get("snapshot")), _ATTRIBUTIONS.validate_python(doc.get("attributions") or {})
    except ValidationError as exc:
        return GpuSnapshot(now, (), f"invalid GPU snapshot ({exc.error_count()} errors)"), {}
    except (ValueError, TypeError, RecursionError) as exc:
        return GpuSnapshot(now, (), f"unreadable GPU snapshot: {type(exc).__name__}"), {}


__all__ = [
    "decode_entry", "decode_gpus", "decode_verdict", "encode_entry", "encode_gpus", "encode_verdict",
    "host_name_from", "valid_host_name",
]
