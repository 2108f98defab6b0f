"""Durability: an append-only log of the durable topology and of persistent messages in durable
queues, fsynced before their publisher confirms, replayed when the broker starts.

Why: "what if the broker dies?" is the first question about asynchronous architecture, and RabbitMQ's
answer is specific: durable exchanges, durable queues and the bindings between durable ends survive a
restart; so do persistent messages (delivery_mode 2) in durable queues, and a publisher confirm for
such a message comes only once it is on disk. Everything transient vanishes. This module gives the
embedded broker the same answer with the simplest structure that is crash-safe:

- one file, ``log``, of records ``[length u32][crc32 u32][payload]`` (logformat.py). A record cut short
  by a crash (kill -9 in the middle of a write) fails its length or CRC check; recovery keeps every record
  before it and truncates the rest, so an unconfirmed message is either there whole or not at all;
- records are buffered during one event-loop turn and written with one ``os.write`` at its end (the
  page cache keeps them through a process crash); :meth:`Store.commit` also fsyncs, and the broker
  calls it before it sends publisher confirms (one fsync per batch: group commit);
- a message that leaves its queue for good (ack, reject, expiry, overflow, purge) gets a small "gone"
  record; when the log is more than twice its live content, :meth:`Store.compact` rewrites the live
  records into a new file (write, fsync, rename, fsync the directory), so the log does not grow without
  bound and a crash during compaction leaves the old log intact;
- a lock file (``flock``) keeps two brokers from sharing one directory; the OS drops it when the
  process dies, even by SIGKILL.

Recovered messages come back with redelivered=True, as RabbitMQ 3.10.8 flags them after a kill -9
(observed: even one never delivered), since nobody can know whether a consumer saw it before the crash.

Not persisted (documented differences from RabbitMQ): the contents of stream queues (their declaration
is), whether a message had been delivered (after a clean stop RabbitMQ flags only those; here all), the
time already spent towards a message TTL (the countdown restarts on recovery), the 4.x profile's
broker-side x-death history (the x-death header itself is kept), and anything outside the
vhost "/" (other vhosts, users and permissions).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from typing import TYPE_CHECKING, Any

from . import logformat
from .durable_topology import DurableTopology, binding_key
from .logformat import U32
from .message import Message

if TYPE_CHECKING:  # pragma: no cover
    from .exchange import Exchange
    from .queue import Queue

LOG, LOCK = "log", "lock"
COMPACT_MIN = 4 * 1024 * 1024  # never compact a log smaller than this (bytes)
# Content-header property flags before delivery_mode (basic class): content-type, content-encoding, headers.
_DELIVERY_MODE_FLAG = 0x1000
# fdatasync: the data and the file size, without other metadata (Linux); fsync where it is missing.
_datasync = getattr(os, "fdatasync", os.fsync)


def is_persistent(header: bytes) -> bool:
    """delivery_mode == 2, read straight from the content-header bytes (no full decode on the hot path)."""
    flags = (header[12] << 8) | header[13]
    if not flags & _DELIVERY_MODE_FLAG:
        return False
    at = 14
    if flags & 0x8000:  # content-type shortstr
        at += 1 + header[at]
    if flags & 0x4000:  # content-encoding shortstr
        at += 1 + header[at]
    if flags & 0x2000:  # headers table: u32 length + bytes
        at += 4 + U32.unpack_from(header, at)[0]
    return header[at] == 2


class Store:
    """The log in ``directory`` (created if missing). ``Store(d).recovered`` lists what was on disk."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.path = os.path.join(directory, LOG)
        self._lock = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            raise ValueError(f"data_dir {directory!r} is in use by another broker") from None
        self.topology = DurableTopology()
        # queue name -> {message id: (offset, length)} of live message records, in id (publish) order.
        self.live: dict[str, dict[int, tuple[int, int]]] = {}
        self.live_bytes = 0
        self.next_id = 1
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._unsynced = False  # messages written (or buffered) since the last fsync
        self._write_handle: Any = None
        self.compactions = 0
        self.recovered = self._recover()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size

    # -- recovery -------------------------------------------------------------------------------
    def _recover(self) -> list[tuple[str, Message]]:
        """Replay the log; cut off a torn tail; return the live messages as (queue, message) by id."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        at = 0
        for start, length in logformat.scan(data):
            self._replay(data, start, length)
            at = start + length
        if at < len(data):  # a record torn by the crash, never confirmed: drop it
            with open(self.path, "r+b") as f:
                f.truncate(at)
                os.fsync(f.fileno())
        out = []
        for queue, records in self.live.items():
            for mid, (offset, _length) in records.items():
                out.append((mid, queue, offset))
        out.sort()
        recovered = []
        for mid, queue, offset in out:
            msg = logformat.message(data, offset)
            msg.store_id = mid
            msg.redelivered = True  # RabbitMQ 3.10.8 flags every message it recovers after a crash (observed)
            recovered.append((queue, msg))
        return recovered

    def _replay(self, data: bytes, start: int, length: int) -> None:
        kind = data[start]
        if kind == logformat.MESSAGE[0]:
            mid, queue = logformat.message_key(data, start)
            records = self.live.get(queue)
            if records is not None:  # a message for a queue deleted since is dead
                records[mid] = (start - logformat.FRAME.size, length + logformat.FRAME.size)
                self.live_bytes += length + logformat.FRAME.size
            self.next_id = max(self.next_id, mid + 1)
        elif kind == logformat.GONE[0]:
            mid, queue = logformat.message_key(data, start)
            self._forget(queue, mid)
        elif kind == logformat.TOPOLOGY[0]:
            self._apply(logformat.topology_record(data, start, length))

    # -- topology -------------------------------------------------------------------------------
    def _apply(self, record: dict[str, Any]) -> None:
        self.topology.apply(record)
        op = record["op"]
        if op == "queue":
            self.live.setdefault(record["name"], {})
        elif op == "queue-delete":
            for _offset, length in self.live.pop(record["name"], {}).values():
                self.live_bytes -= length

    def _topology(self, record: dict[str, Any]) -> None:
        self._apply(record)
        self._append(logformat.topology_payload(record))

    def exchange_declared(self, ex: Exchange) -> None:
        self._topology(
            {
                "op": "exchange",
                "name": ex.name,
                "type": ex.type,
                "auto_delete": ex.auto_delete,
                "internal": ex.internal,
                "arguments": dict(ex.arguments),
            }
        )

    def exchange_deleted(self, name: str) -> None:
        if name in self.topology.exchanges:
            self._topology({"op": "exchange-delete", "name": name})

    def queue_declared(self, q: Queue) -> None:
        self._topology({"op": "queue", "name": q.name, "auto_delete": q.auto_delete, "arguments": dict(q.arguments)})

    def queue_deleted(self, name: str) -> None:
        if name in self.topology.queues:
            self._topology({"op": "queue-delete", "name": name})

    def binding(self, source: str, destination: Any, routing_key: str, arguments: dict[str, Any], unbind: bool) -> None:
        """A binding between durable ends changed (``destination`` is an Exchange or a Queue)."""
        kind = "q" if hasattr(destination, "consumers") else "e"
        record = {
            "op": "unbind" if unbind else "bind",
            "source": source,
            "kind": kind,
            "destination": destination.name,
            "routing_key": routing_key,
            "arguments": dict(arguments),
        }
        if unbind and binding_key(record) not in self.topology.bindings:
            return
        self._topology(record)

    # -- messages -------------------------------------------------------------------------------
    def add(self, queue: str, msg: Message) -> None:
        """Log a persistent message entering a durable queue; it is on disk after the next commit()."""
        records = self.live.get(queue)
        if records is None:  # not a queue the log knows (e.g. stored before the store was attached)
            return
        mid = self.next_id
        self.next_id += 1
        msg.store_id = mid
        payload = logformat.message_payload(mid, queue, msg)
        length = len(payload) + logformat.FRAME.size
        records[mid] = (self.size + self._pending_bytes, length)
        self.live_bytes += length
        self._unsynced = True
        self._append(payload)

    def remove(self, queue: str, msg: Message) -> None:
        """The message left its queue for good."""
        if self._forget(queue, msg.store_id):
            self._append(logformat.gone_payload(msg.store_id, queue))
        msg.store_id = 0

    def _forget(self, queue: str, mid: int) -> bool:
        entry = self.live.get(queue, {}).pop(mid, None)
        if entry is None:
            return False
        self.live_bytes -= entry[1]
        return True

    def messages(self, queue: str) -> int:
        """Persistent messages of ``queue`` in the log (for tests and the admin view)."""
        return len(self.live.get(queue, ()))

    # -- writing --------------------------------------------------------------------------------
    def _append(self, payload: bytes) -> None:
        record = logformat.frame(payload)
        self._pending.append(record)
        self._pending_bytes += len(record)
        if self._write_handle is None:
            try:
                self._write_handle = asyncio.get_running_loop().call_soon(self.write)
            except RuntimeError:  # no running loop (a test driving the store directly): commit() writes
                pass

    def _write_pending(self) -> None:
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        if not self._pending:
            return
        view = memoryview(b"".join(self._pending))
        self._pending.clear()
        self.size += self._pending_bytes
        self._pending_bytes = 0
        while view:
            view = view[os.write(self._fd, view) :]

    def write(self) -> None:
        """Hand buffered records to the OS (one write); compact if the log is mostly dead records."""
        self._write_pending()
        if self.size > COMPACT_MIN and self.size > 2 * (self.live_bytes + 64 * len(self.topology.bindings)):
            self.compact()

    def commit(self) -> None:
        """Write, and fsync if a message was logged since the last fsync: call before sending confirms."""
        self.write()
        if self._unsynced:
            _datasync(self._fd)
            self._unsynced = False

    def compact(self) -> None:
        """Rewrite the log as its live records only (topology, then messages in id order)."""
        self._write_pending()
        new_path = self.path + ".new"
        entries = sorted(
            (mid, queue, offset, length)
            for queue, records in self.live.items()
            for mid, (offset, length) in records.items()
        )
        with open(self.path, "rb") as old, open(new_path, "wb") as new:
            for record in self.topology.records():
                new.write(logformat.frame(logformat.topology_payload(record)))
            for mid, queue, offset, length in entries:
                old.seek(offset)
                self.live[queue][mid] = (new.tell(), length)
                new.write(old.read(length))
            new.flush()
            os.fsync(new.fileno())
            size = new.tell()
        os.replace(new_path, self.path)
        self._fsync_directory()
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.size = size
        self._unsynced = False
        self.compactions += 1

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Write and fsync what is buffered, then release the file and the lock."""
        if self._fd < 0:
            return
        self.commit()
        os.close(self._fd)
        os.close(self._lock)
        self._fd = self._lock = -1
