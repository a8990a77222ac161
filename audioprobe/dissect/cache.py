"""A content-addressed store of expensive text results (captions, LLM replies).

Each entry is one small JSON file named by the sha256 of its key (canonical JSON of everything the
result depends on: audio content or prompt, backend, model, settings). Entries are written atomically,
so parallel jobs can share one store and a killed job leaves no half-written entry. The store is a cache,
not an artifact: deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from audioprobe.io.atomic import canonical_json, write_text


def key_digest(key) -> str:
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()


class TextCache:
    """get/put of JSON-serialisable values by key, with hit and miss counts for the logs."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, key):
        path = self._path(key_digest(key))
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(path.read_text())["value"]

    def put(self, key, value) -> None:
        write_text(self._path(key_digest(key)), json.dumps({"key": key, "value": value}, sort_keys=True))

    def get_or_make(self, key, make):
        """The cached value, or ``make()`` stored under ``key``."""
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value
