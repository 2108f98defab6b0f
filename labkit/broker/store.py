"""Durability: an append-only log of the durable topology and of persistent messages in durable
queues, fsynced before their publisher confirms, replayed when the broker starts.

Why: "what if the broker dies?" is the first question about asynchronous architecture, and RabbitMQ's
answer is specific: durable exchanges, durable queues and the bindings between durable ends survive a
restart; so do persistent messages (delivery_mode 2) in durable queues, and a publisher confirm for
such a message comes only once it is on disk. Everything transient vanishes. This module gives the
embedded broker the same answer with the simplest structure that is crash-safe:

- one file, ``log``, of records ``[length u32][crc32 u32][payload]``. A record cut short by a crash
  (kill -9 in the middle of a write) fails its length or CRC check; recovery keeps every record before
  it and truncates the rest, so an unconfirmed message is either there whole or not at all;
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
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pamqp import decode, encode

from . import errors
from .message import Message

if TYPE_CHECKING:  # pragma: no cover
    from .exchange import Exchange
    from .queue import Queue
    from .vhost import VHost

log = logging.getLogger(__name__)

LOG, LOCK = "log", "lock"
COMPACT_MIN = 4 * 1024 * 1024  # never compact a log smaller than this (bytes)
_FRAME = struct.Struct(">II")  # payload length, crc32 of the payload
_ID = struct.Struct(">Q")
_U32 = struct.Struct(">I")
MESSAGE, GONE, TOPOLOGY = b"M", b"G", b"T"
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
        at += 4 + _U32.unpack_from(header, at)[0]
    return header[at] == 2


def _shortstr(value: str) -> bytes:
    raw = value.encode()
    return bytes((len(raw),)) + raw


def _read_shortstr(buf: bytes, at: int) -> tuple[str, int]:
    n = buf[at]
    return buf[at + 1 : at + 1 + n].decode(), at + 1 + n


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


class Topology:
    """The durable exchanges, queues and bindings, as plain dicts; the same ``apply`` runs live and
    during replay, so deleting an exchange or queue drops its bindings both times."""

    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: dict[tuple[Any, ...], dict[str, Any]] = {}

    def apply(self, record: dict[str, Any]) -> None:
        op = record["op"]
        if op == "exchange":
            self.exchanges[record["name"]] = record
        elif op == "queue":
            self.queues[record["name"]] = record
        elif op in ("exchange-delete", "queue-delete"):
            table = self.exchanges if op == "exchange-delete" else self.queues
            table.pop(record["name"], None)
            kind = "e" if op == "exchange-delete" else "q"
            for key in [
                k
                for k, b in self.bindings.items()
                if (b["kind"], b["destination"]) == (kind, record["name"])
                or (kind == "e" and b["source"] == record["name"])
            ]:
                del self.bindings[key]
        elif op == "bind":
            self.bindings[_binding_key(record)] = record
        elif op == "unbind":
            self.bindings.pop(_binding_key(record), None)

    def records(self) -> Iterator[dict[str, Any]]:
        yield from self.exchanges.values()
        yield from self.queues.values()
        yield from self.bindings.values()


def _binding_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["source"],
        record["kind"],
        record["destination"],
        record["routing_key"],
        repr(sorted(record["arguments"].items())),
    )


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
        self.topology = Topology()
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
        view = memoryview(data)
        at, end = 0, len(data)
        while at + _FRAME.size <= end:
            length, crc = _FRAME.unpack_from(data, at)
            start = at + _FRAME.size
            if start + length > end or zlib.crc32(view[start : start + length]) != crc or not length:
                break
            self._replay(data, start, length)
            at = start + length
        if at < end:  # a record torn by the crash, never confirmed: drop it
            with open(self.path, "r+b") as f:
                f.truncate(at)
                os.fsync(f.fileno())
        out = []
        for queue, records in self.live.items():
            for mid, (offset, _length) in records.items():
                out.append((mid, queue, offset))
        out.sort()
        return [(queue, self._message(data, offset, mid)) for mid, queue, offset in out]

    def _replay(self, data: bytes, start: int, length: int) -> None:
        kind = data[start]
        if kind == MESSAGE[0]:
            mid = _ID.unpack_from(data, start + 1)[0]
            queue, _ = _read_shortstr(data, start + 1 + _ID.size)
            records = self.live.get(queue)
            if records is not None:  # a message for a queue deleted since is dead
                records[mid] = (start - _FRAME.size, length + _FRAME.size)
                self.live_bytes += length + _FRAME.size
            self.next_id = max(self.next_id, mid + 1)
        elif kind == GONE[0]:
            mid = _ID.unpack_from(data, start + 1)[0]
            queue, _ = _read_shortstr(data, start + 1 + _ID.size)
            self._forget(queue, mid)
        elif kind == TOPOLOGY[0]:
            _, record = decode.field_table(data[start + 1 : start + length])
            self._apply(record)

    @staticmethod
    def _message(data: bytes, offset: int, mid: int) -> Message:
        """Decode one message record (inlined field reads: recovery decodes every live message)."""
        end = offset + _FRAME.size + _U32.unpack_from(data, offset)[0]
        at = offset + _FRAME.size + 1 + _ID.size
        at += 1 + data[at]  # the queue name (the caller knows it)
        n = data[at]
        exchange = data[at + 1 : at + 1 + n].decode()
        at += 1 + n
        n = data[at]
        routing_key = data[at + 1 : at + 1 + n].decode()
        at += 1 + n
        header_end = at + _U32.size + _U32.unpack_from(data, at)[0]
        msg = Message(exchange, routing_key, data[at + _U32.size : header_end], data[header_end:end])
        msg.store_id = mid
        msg.redelivered = True  # RabbitMQ 3.10.8 flags every message it recovers after a crash (observed)
        return msg

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
        self._append(TOPOLOGY + encode.field_table(record))

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
        if unbind and _binding_key(record) not in self.topology.bindings:
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
        payload = b"".join(
            (
                MESSAGE,
                _ID.pack(mid),
                _shortstr(queue),
                _shortstr(msg.exchange),
                _shortstr(msg.routing_key),
                _U32.pack(len(msg.header)),
                msg.header,
                msg.body,
            )
        )
        length = len(payload) + _FRAME.size
        records[mid] = (self.size + self._pending_bytes, length)
        self.live_bytes += length
        self._unsynced = True
        self._append(payload)

    def remove(self, queue: str, msg: Message) -> None:
        """The message left its queue for good."""
        if self._forget(queue, msg.store_id):
            self._append(GONE + _ID.pack(msg.store_id) + _shortstr(queue))
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
        record = _frame(payload)
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
                new.write(_frame(TOPOLOGY + encode.field_table(record)))
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


def restore(vhost: VHost, store: Store) -> None:
    """Rebuild the durable topology and re-enqueue the persistent messages (called before the broker
    accepts connections). The vhost logs nothing while the topology is rebuilt (it is already in the
    log); it is attached to the store before the messages go back, so one a queue refuses or expires
    at once is logged as gone."""
    topology = store.topology
    steps: list[tuple[Callable[..., object], tuple[Any, ...]]] = [
        (vhost.exchange_declare, (r["name"], r["type"], False, True, r["auto_delete"], r["internal"], r["arguments"]))
        for r in topology.exchanges.values()
    ]
    steps += [
        (vhost.queue_declare, (None, r["name"], False, True, False, r["auto_delete"], r["arguments"]))
        for r in topology.queues.values()
    ]
    steps += [
        (vhost.queue_bind, (None, r["destination"], r["source"], r["routing_key"], r["arguments"], False))
        if r["kind"] == "q"
        else (vhost.exchange_bind, (r["destination"], r["source"], r["routing_key"], r["arguments"], False))
        for r in topology.bindings.values()
    ]
    for step, args in steps:
        try:
            step(*args)
        except errors.AMQPError as exc:  # e.g. a declaration this broker profile now refuses
            log.warning("not restored from %s: %s%r: %s", store.path, step.__name__, args, exc)
    vhost.store = store
    for queue, msg in store.recovered:
        q = vhost.queues.get(queue)
        if q is None or not q.publish(msg):
            store.remove(queue, msg)
    store.recovered = []
