"""Hashes shared with llenergymeasure and used for step sources."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def compute_config_hash(config: dict[str, Any]) -> str:
    """Hash a config the way llenergymeasure does: 16 hex chars of sha256.

    Top-level ``experiment_id`` and ``_metadata`` are dropped, the rest is
    dumped with sorted keys (``default=str`` for anything not JSON-native).
    """
    stable = {k: v for k, v in config.items() if k not in ("experiment_id", "_metadata")}
    content = json.dumps(stable, sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def source_hash(source: str) -> str:
    """Hash of a step's source text, to tell when the file changed since a run began."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]
