"""An idempotent side effect: a payment ledger in SQLite that records each message id with its charge.

Why: at-least-once delivery means a consumer that crashes after its side effect but before its ack gets
the same message again, and charges the customer twice. Remembering processed ids in memory does not help
(the memory dies with the consumer, and the id is stored after the effect, so a crash in between loses
it). What works is storing "message X was processed" *in the same transaction* as the effect: either both
are committed or neither, and a redelivered X finds its id and is skipped.

    ledger = Ledger()                              # in memory; Ledger("pay.db") for a file
    ledger.charge("msg-1", 20, dedupe=True)        # -> True: charged
    ledger.charge("msg-1", 20, dedupe=True)        # -> False: a duplicate, nothing charged
    ledger.charge("msg-1", 20, dedupe=False)       # -> True: the naive consumer charges again
    ledger.duplicates()                            # -> 1 (extra charges beyond one per message id)

SQLite calls are synchronous and take microseconds on an in-memory database: fine inside an async handler.
"""

from __future__ import annotations

import sqlite3

from labkit._validate import non_negative
from labkit.history import recorder

__all__ = ["Ledger"]


class Ledger:
    """Charges per message id; ``dedupe=True`` makes a repeated message id a no-op, atomically."""

    def __init__(self, path: str = ":memory:"):
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a file name or ':memory:', got {path!r}")
        self._db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS processed (message_id TEXT PRIMARY KEY);"
            "CREATE TABLE IF NOT EXISTS charges (n INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
            " amount REAL NOT NULL);"
        )

    def charge(self, message_id: str, amount: float, *, dedupe: bool = True) -> bool:
        """Charge ``amount`` for ``message_id``; return False if ``dedupe`` and it was already charged.

        With ``dedupe`` the id and the charge are written in one transaction: a crash can leave both or
        neither, never a charge without its id.
        """
        if not isinstance(message_id, str) or not message_id:
            raise ValueError(f"message_id must be a non-empty string, got {message_id!r}")
        non_negative("amount", amount)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if dedupe:
                inserted = db.execute("INSERT OR IGNORE INTO processed VALUES (?)", (message_id,)).rowcount
                if not inserted:
                    db.execute("ROLLBACK")
                    recorder.effect("charge", applied=False, message_id=message_id)
                    return False
            db.execute("INSERT INTO charges (message_id, amount) VALUES (?, ?)", (message_id, float(amount)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        recorder.effect("charge", message_id=message_id)  # for a recorded history (no-op when off)
        return True

    def charges(self) -> int:
        """Number of charges made (duplicates included)."""
        return self._db.execute("SELECT COUNT(*) FROM charges").fetchone()[0]

    def charged_ids(self) -> set[str]:
        """The distinct message ids charged at least once (compare with what was published: none lost)."""
        return {row[0] for row in self._db.execute("SELECT DISTINCT message_id FROM charges")}

    def duplicates(self) -> int:
        """Extra charges: charges beyond the first for each message id (0 for an idempotent consumer)."""
        return self.charges() - len(self.charged_ids())

    def total(self) -> float:
        """The sum of all charges (what the customers were billed)."""
        return self._db.execute("SELECT COALESCE(SUM(amount), 0) FROM charges").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"<Ledger charges={self.charges()} duplicates={self.duplicates()}>"
