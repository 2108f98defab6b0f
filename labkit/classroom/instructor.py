"""The instructor's side of a class: create it (vhost, accounts), admit learners, send commands, collect reports.

Why it is shaped like this: everything goes through the shared broker, so learners anywhere (a hub, laptops)
can take part, and every safety property is the broker's to enforce (see topology.py). The instructor's
kernel holds the roster and the reports; experiments (experiments.py) and the dashboard (dashboard.py) read
them. Stopping it (``lab.stop()``) deletes the class's vhost and users and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiormq

from ..lifecycle import Part, delivery_tag, started, stopped_on_failure, wait_until
from . import topology as t
from .joincode import JoinCode, check_name
from .provision import Backend, ManagementAPI, Rabbitmqctl

MANAGEMENT_PORT = 15672


@dataclass
class Member:
    """One learner as the instructor sees it (the dashboard's table row)."""

    name: str
    user: str
    joined: float
    service_time: float = 0.0
    present: bool = False  # True from its hello until its bye
    done: int = 0
    errors: int = 0
    last_seen: float = 0.0
    extra: dict = field(default_factory=dict)


def backend_for(lab_or_url: Any, management_url: str | None = None) -> tuple[Backend, str]:
    """The provisioning backend for a Lab (embedded broker: its admin endpoint) or an AMQP URL (RabbitMQ:
    the management API at ``management_url`` or host:15672; ``rabbitmqctl`` if ``management_url='rabbitmqctl'``)."""
    broker = getattr(lab_or_url, "_broker", None)
    amqp_url = getattr(lab_or_url, "amqp_url", lab_or_url)
    if not isinstance(amqp_url, str):
        raise ValueError(f"lab_or_url must be a running Lab or an amqp:// URL, got {lab_or_url!r}")
    parts = urlsplit(amqp_url)
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    if broker is not None and getattr(broker, "admin_url", None):
        return ManagementAPI(broker.admin_url, user, password), amqp_url
    if management_url == "rabbitmqctl":
        return Rabbitmqctl(), amqp_url
    return ManagementAPI(management_url or f"http://{parts.hostname}:{MANAGEMENT_PORT}/", user, password), amqp_url


class Classroom(Part):
    """``classroom = await lab.start(Classroom())``; ``classroom.code`` is the join code to show.

    A lifecycle part: the lab it is started on gives it its broker (the embedded one's admin endpoint, or
    ``AMQP_URL``'s RabbitMQ and its management API at ``management_url``, default host:15672;
    ``"rabbitmqctl"`` for the CLI), and ``lab.stop()`` closes the class (vhost and users deleted).
    Without a lab: ``await Classroom("amqp://...").start()``.
    """

    name = "classroom"

    def __init__(self, amqp_url: str | None = None, management_url: str | None = None) -> None:
        self._source: Any = amqp_url
        self.management_url = management_url
        self.backend: Backend | None = None
        self.class_id = secrets.token_hex(3)
        self.vhost = f"labkit-class-{self.class_id}"
        self.instructor_user = f"{self.class_id}-instructor"
        self._password = secrets.token_urlsafe(12)
        self.code: JoinCode | None = None
        self.members: dict[str, Member] = {}
        self.reports: list[dict] = []  # every valid report, with "recv" (instructor's clock) added
        self.errors: dict[str, int] = defaultdict(int)  # kind -> count (spoofed, malformed, oversized, ...)
        self.listeners: list[Any] = []  # callables(report) the experiments register
        self.conn: aiormq.abc.AbstractConnection | None = None
        self.channel: aiormq.abc.AbstractChannel | None = None
        self._inbox_ch: aiormq.abc.AbstractChannel | None = None
        self._users: list[str] = []
        self.t0 = time.time()

    def attach(self, lab: Any) -> None:
        """Called by ``lab.start(classroom)``: the class lives on the lab's broker."""
        if self._source is None:
            self._source = lab

    @property
    def running(self) -> bool:
        return self.conn is not None and not self.conn.is_closed

    async def start(self) -> Classroom:
        self._check_stopped()
        if self._source is None:
            raise ValueError("amqp_url is needed when the classroom is not started with lab.start(classroom)")
        self.backend, amqp_url = backend_for(self._source, self.management_url)
        parts = urlsplit(amqp_url)
        self.code = JoinCode(
            parts.hostname or "127.0.0.1",
            parts.port or 5672,
            self.vhost,
            self.class_id,
            f"{self.class_id}-join",
            secrets.token_urlsafe(12),
        )
        async with stopped_on_failure(self):
            await self._open()
        return self

    @property
    def url(self) -> str:
        return started(self.code, "the classroom").url(self.instructor_user, self._password)

    async def _open(self) -> None:
        b, code = started(self.backend, "the classroom"), started(self.code, "the classroom")
        await b.add_vhost(self.vhost)
        for user, password, perms in (
            (self.instructor_user, self._password, t.FULL_PERMISSIONS),
            (code.user, code.password, t.JOIN_PERMISSIONS),
        ):
            await b.add_user(user, password)
            self._users.append(user)
            await b.set_permissions(self.vhost, user, **perms)
        self.conn = await aiormq.connect(self.url)
        self.channel = ch = await self.conn.channel()
        for exchange, kind in (
            (t.CONTROL, "fanout"),
            (t.FANOUT, "fanout"),
            (t.INBOX, "direct"),
            (t.SERVICE, "direct"),
            (t.JOIN, "direct"),
        ):
            await ch.exchange_declare(exchange, exchange_type=kind, durable=True)
        await ch.queue_declare(t.WORK, durable=True, arguments=t.durable_args())
        await ch.queue_declare(t.JOIN, durable=True, arguments=t.durable_args(max_length=200))
        await ch.queue_bind(t.JOIN, t.JOIN, routing_key="join")
        await ch.queue_declare(t.SERVICE, durable=True, arguments=t.durable_args())
        await ch.queue_bind(t.SERVICE, t.SERVICE, routing_key="call")
        self._inbox_ch = await self.conn.channel(publisher_confirms=False)
        # Per-consumer prefetch: the instructor serves the learners' inboxes round robin, so a flooding
        # learner gets at most its share of this kernel; its excess waits in its own bounded inbox.
        await self._inbox_ch.basic_qos(prefetch_count=t.INBOX_PREFETCH)
        join_ch = await self.conn.channel(publisher_confirms=False)
        await join_ch.basic_qos(prefetch_count=1)  # one account at a time: a join flood waits in its queue
        await join_ch.basic_consume(t.JOIN, self._on_join)

    # -- joining ----------------------------------------------------------------------------------
    async def _on_join(self, message: aiormq.abc.DeliveredMessage) -> None:
        props = message.header.properties
        try:
            name = check_name(json.loads(message.body).get("name"))
            reply = await self.admit(name)
        except (ValueError, AttributeError) as exc:
            reply = {"error": str(exc)}
        if props.reply_to:
            await message.channel.basic_publish(json.dumps(reply).encode(), routing_key=props.reply_to)
        await message.channel.basic_ack(delivery_tag(message))

    async def admit(self, name: str) -> dict:
        """Create (or renew, after a kernel restart) a learner's user and inbox; returns the credentials."""
        user, password = f"{self.class_id}-{name}", secrets.token_urlsafe(12)
        backend, channel = started(self.backend, "the classroom"), started(self.channel, "the classroom")
        await backend.add_user(user, password)
        if user not in self._users:
            self._users.append(user)
        await backend.set_permissions(self.vhost, user, **t.learner_permissions(name))
        await backend.set_max_channels(user, t.LEARNER_MAX_CHANNELS)
        inbox = t.inbox(name)
        if name not in self.members:
            await channel.queue_declare(
                inbox, durable=True, arguments=t.durable_args(t.INBOX_MAX_LENGTH, t.INBOX_MAX_BYTES)
            )
            await channel.queue_bind(inbox, t.INBOX, routing_key=name)
            await started(self._inbox_ch, "the classroom").basic_consume(inbox, self._on_report)
            self.members[name] = Member(name, user, time.time())
        return {"user": user, "password": password, "name": name}

    # -- reports ----------------------------------------------------------------------------------
    async def _on_report(self, message: aiormq.abc.DeliveredMessage) -> None:
        recv = time.time()
        await message.channel.basic_ack(delivery_tag(message))
        name = message.routing_key or ""
        member = self.members.get(name)
        kind = self._invalid(message, member)
        if kind or member is None:
            self.errors[kind] += 1
            user_id = message.header.properties.user_id  # checked by the broker: who really sent it
            sender = next((m for m in self.members.values() if m.user == user_id), None)
            if sender is not None:
                sender.errors += 1
            return
        report = json.loads(message.body)
        report["recv"] = recv
        member.last_seen = recv
        kind = report.get("t")
        if kind == "hello":
            member.present, member.service_time = True, float(report.get("service_time") or 0)
        elif kind == "bye":
            member.present = False
        elif kind == "done":
            member.done += 1
        self.reports.append(report)
        for listener in list(self.listeners):
            listener(report)

    def _invalid(self, message: Any, member: Member | None) -> str:
        """Why a report is not accepted ('' if it is): the broker checked user_id; the inbox is the sender's."""
        if member is None:
            return "unknown sender"
        if message.header.properties.user_id != member.user:
            return "spoofed"
        if len(message.body) > t.MAX_REPORT_BYTES:
            return "oversized"
        try:
            report = json.loads(message.body)
        except ValueError:
            return "malformed"
        if not isinstance(report, dict) or report.get("name") != member.name:
            return "malformed"
        return ""

    # -- commands ---------------------------------------------------------------------------------
    async def command(self, cmd: str, to: list[str] | None = None, **fields: Any) -> None:
        """Send a control message to every learner (or only those named in ``to``)."""
        body = {"cmd": cmd, "to": to, "sent": time.time(), **fields}
        await started(self.channel, "the classroom").basic_publish(
            json.dumps(body).encode(), exchange=t.CONTROL, routing_key=""
        )

    @property
    def present(self) -> list[str]:
        return [m.name for m in self.members.values() if m.present]

    async def wait_for_learners(self, n: int, timeout: float = 60.0) -> None:
        await wait_until(lambda: len(self.present) >= n, timeout=timeout, what=f"{n} learners joining")

    async def ping(self, timeout: float = 5.0, among: list[str] | None = None) -> dict[str, float]:
        """Control-message round trip per present learner (or those ``among``), in seconds (instructor's
        clock). Learners that do not answer within ``timeout`` (a killed kernel says no goodbye) are left out."""
        ping_id, names, rtt = secrets.token_hex(4), set(self.present if among is None else among), {}
        sent = time.time()

        def on_pong(report: dict) -> None:
            if report.get("t") == "pong" and report.get("id") == ping_id:
                rtt[report["name"]] = report["recv"] - sent

        self.listeners.append(on_pong)
        try:
            await self.command("ping", to=among, id=ping_id)
            await wait_until(lambda: names <= rtt.keys(), timeout=timeout, what="every pong")
        except TimeoutError:
            pass
        finally:
            self.listeners.remove(on_pong)
        return rtt

    async def depth(self, queue: str = t.WORK) -> int:
        ok = await started(self.channel, "the classroom").queue_declare(queue, passive=True)
        return ok.message_count or 0  # a declare-ok always carries it; aiormq types it optional

    async def stop(self) -> None:
        """Tell learners to leave, delete the class's vhost and users (nothing else). Safe to call twice."""
        if self.backend is None:
            return
        if self.conn is not None and not self.conn.is_closed:
            try:
                await self.command("leave")
                await asyncio.sleep(0.2)
            except aiormq.exceptions.AMQPError:
                pass
            await self.conn.close()
        self.conn = None
        try:
            for user in self._users:
                await self.backend.delete_user(user)
            self._users.clear()
            await self.backend.delete_vhost(self.vhost)
        finally:
            await self.backend.close()
            self.backend = None

    def __repr__(self) -> str:
        return f"<Classroom {self.vhost}: {len(self.present)} present>"
