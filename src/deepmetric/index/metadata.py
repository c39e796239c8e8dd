"""The metadata half of an :class:`~deepmetric.index.Index`: items and settings in SQLite.

Table ``items(id INTEGER PRIMARY KEY, slot INTEGER UNIQUE, label TEXT, source TEXT,
attributes TEXT)``, where ``slot`` is the item's vector in the faiss index and ``attributes`` a
JSON object; table ``meta(key, value)`` holds the index settings as JSON values. The database
runs in WAL mode with ``synchronous=FULL``: readers in other processes never block the writer,
and a committed write survives a crash.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Scalar = str | int | float | bool
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    slot INTEGER NOT NULL UNIQUE,
    label TEXT,
    source TEXT,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS items_label ON items(label);
"""


@dataclass(frozen=True)
class Item:
    """One indexed item's metadata.

    Attributes:
        id: the item id (int64) that search returns.
        label: its class name, or None.
        source: where it came from (a file path or URI), or None.
        attributes: free JSON attributes (a dict).
    """

    id: int
    label: str | None = None
    source: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"id", "label", "source", "attributes"}``."""
        return {
            "id": self.id,
            "label": self.label,
            "source": self.source,
            "attributes": self.attributes,
        }


def attribute_json(value: Mapping[str, Any] | None, position: int) -> str:
    """``value`` as a JSON object string, or a ValueError naming the item position."""
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise ValueError(f"attributes[{position}] must be a dict; got {type(value).__name__}")
    try:
        return json.dumps(dict(value), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"attributes[{position}] must be JSON-serialisable: {err}") from None


def check_filter(label: str | None, attributes: Mapping[str, Scalar] | None) -> None:
    """Raise ValueError for a filter that cannot be expressed (bad key, non-scalar value)."""
    if label is not None and not isinstance(label, str):
        raise ValueError(f"label filter must be a string; got {type(label).__name__}")
    for key, value in (attributes or {}).items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(
                f"attribute filter keys must be identifiers (letters, digits, _); got {key!r}"
            )
        if not isinstance(value, str | int | float | bool):
            raise ValueError(
                f"attribute filter {key!r} must equal a string, number or bool; got "
                f"{type(value).__name__}"
            )


class ItemStore:
    """SQLite access for one index directory; every method is one statement or transaction.

    Example:
        >>> store = ItemStore(":memory:")
        >>> with store.transaction():
        ...     store.insert([7], [0], ["cat"], [None], ["{}"])
        >>> store.items([7, 8])[0].label, store.items([7, 8])[1]
        ('cat', None)
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        if read_only:
            uri = f"file:{Path(path).resolve()}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
        else:
            self.db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        self.db.isolation_level = None  # transactions are explicit (BEGIN IMMEDIATE)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if the body raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- settings -------------------------------------------------------------------------------
    def get_meta(self) -> dict[str, Any]:
        """Every setting, JSON-decoded."""
        rows = self.db.execute("SELECT key, value FROM meta").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def set_meta(self, values: Mapping[str, Any]) -> None:
        """Insert or replace settings (JSON-encoded)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [(key, json.dumps(value)) for key, value in values.items()],
        )

    # -- items ----------------------------------------------------------------------------------
    def insert(
        self,
        ids: Sequence[int],
        slots: Sequence[int],
        labels: Sequence[str | None],
        sources: Sequence[str | None],
        attributes: Sequence[str],
    ) -> None:
        """Insert rows (``attributes`` already JSON text); an existing id is replaced."""
        self.db.executemany(
            "INSERT OR REPLACE INTO items(id, slot, label, source, attributes) "
            "VALUES (?, ?, ?, ?, ?)",
            zip(ids, slots, labels, sources, attributes, strict=True),
        )

    def delete(self, ids: Sequence[int]) -> None:
        """Delete the rows of ``ids``."""
        self.db.execute(
            "DELETE FROM items WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)
        )

    def slots_of(self, ids: Sequence[int]) -> dict[int, int]:
        """``{id: slot}`` for the ids that exist."""
        rows = self.db.execute(
            "SELECT id, slot FROM items WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),),
        ).fetchall()
        return dict(rows)

    def existing_slots(self, ids: np.ndarray) -> np.ndarray:
        """``(n,)`` int64 slots of ``ids``; KeyError naming the ids that do not exist."""
        found = self.slots_of(ids.tolist())
        missing = [int(i) for i in ids if int(i) not in found]
        if missing:
            raise KeyError(f"ids not in the index: {missing[:10]}")
        return np.array([found[int(i)] for i in ids], dtype=np.int64)

    def snapshot(self) -> tuple[dict[str, Any], np.ndarray]:
        """Settings and slot map read in one transaction (a consistent pair under WAL)."""
        self.db.execute("BEGIN")
        try:
            meta = self.get_meta()
            return meta, self.slot_map(int(meta["next_slot"]))
        finally:
            self.db.execute("COMMIT")

    def slot_map(self, size: int) -> np.ndarray:
        """``(size,)`` int64: the item id of every slot, -1 for slots no item uses."""
        rows = np.array(self.db.execute("SELECT slot, id FROM items").fetchall(), dtype=np.int64)
        out = np.full(size, -1, dtype=np.int64)
        if len(rows):
            out[rows[:, 0]] = rows[:, 1]
        return out

    def count(self) -> int:
        """The number of items."""
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def max_id(self) -> int:
        """The largest item id, or -1 when empty."""
        return int(self.db.execute("SELECT COALESCE(MAX(id), -1) FROM items").fetchone()[0])

    def items(self, ids: Sequence[int]) -> list[Item | None]:
        """The items of ``ids``, in that order; None for ids that do not exist."""
        rows = self.db.execute(
            "SELECT id, label, source, attributes FROM items "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in ids]),),
        ).fetchall()
        found = {row[0]: Item(row[0], row[1], row[2], json.loads(row[3])) for row in rows}
        return [found.get(int(i)) for i in ids]

    def matching(
        self, ids: np.ndarray, label: str | None, attributes: Mapping[str, Scalar] | None
    ) -> np.ndarray:
        """``(n,)`` bool: which of ``ids`` have ``label`` and every attribute value given."""
        clauses, params = ["id IN (SELECT value FROM json_each(?))"], [json.dumps(ids.tolist())]
        if label is not None:
            clauses.append("label = ?")
            params.append(label)
        for key, value in (attributes or {}).items():
            clauses.append(f"json_extract(attributes, '$.{key}') = ?")
            params.append(value)  # type: ignore[arg-type]  # sqlite binds str/int/float/bool
        sql = "SELECT id FROM items WHERE " + " AND ".join(clauses)
        kept = np.array([row[0] for row in self.db.execute(sql, params)], dtype=np.int64)
        return np.isin(ids, kept)
