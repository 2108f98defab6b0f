"""The learner's agent: join a class with its code, then take part in what the instructor runs.

Why an agent: in a class the learners' kernels *are* the system (consumers with their own service
times, subscribers, callers), so each runs this small loop that obeys the instructor's control messages
(``class.control``) and reports what it did to its own inbox (``class.in``, routing key = its name,
user_id checked by the broker). Work is done one message at a time with the learner's service time,
reported before it is acked (at-least-once: a crash redelivers, never loses). ``python -m
labkit.classroom.learner CODE --name NAME`` runs one as a process (the simulated class does that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

import aiormq
from pamqp.commands import Basic

from .. import _validate as v
from ..lifecycle import started, wait_until
from . import topology as t
from .joincode import JoinCode, check_name

REPLY_TO = "amq.rabbitmq.reply-to"


async def request_account(code: str | JoinCode, name: str, timeout: float = 10.0) -> dict:
    """Ask the instructor (through the join account) for this learner's user; returns its credentials."""
    jc = JoinCode.parse(code)
    conn = await aiormq.connect(jc.url())
    try:
        ch = await conn.channel()
        answer: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_reply(message: aiormq.abc.DeliveredMessage) -> None:
            if not answer.done():
                answer.set_result(json.loads(message.body))

        await ch.basic_consume(REPLY_TO, on_reply, no_ack=True)
        await ch.basic_publish(
            json.dumps({"name": name}).encode(),
            exchange=t.JOIN,
            routing_key="join",
            properties=Basic.Properties(reply_to=REPLY_TO, expiration=str(int(timeout * 1000))),
        )
        try:
            reply = await asyncio.wait_for(answer, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer from the instructor within {timeout} s: is the class still open?") from None
    finally:
        await conn.close()
    if "error" in reply:
        raise ValueError(f"the instructor refused the join: {reply['error']}")
    return reply


class Learner:
    """``learner = await Learner.join(code, "ana")``; ``await learner.leave()``.

    ``service_time`` (seconds) is how long this learner takes per work message. ``on_crash``: what the
    instructor's "crash" command does ("abort": drop the connection at once, unacked work goes back to
    the queue; "exit": end the process, as a killed kernel would).
    """

    def __init__(self, code: str | JoinCode, name: str, service_time: float = 0.02, on_crash: str = "abort") -> None:
        self.code = JoinCode.parse(code)
        self.name = check_name(name)
        self.service_time = v.positive("service_time", service_time)
        if on_crash not in ("abort", "exit"):
            raise ValueError(f"on_crash must be 'abort' or 'exit', got {on_crash!r}")
        self.on_crash = on_crash
        self.user = ""
        self.done = 0
        self.failed = 0
        self.conn: aiormq.abc.AbstractConnection | None = None
        self._report_ch: aiormq.abc.AbstractChannel | None = None
        self._work_ch: aiormq.abc.AbstractChannel | None = None
        # held from "is the work channel still mine?" until the ack is on the wire, and while idle gives the
        # channel up: an ack written after the channel.close is refused with a connection error (504)
        self._acking = asyncio.Lock()
        self._fan_ch: aiormq.abc.AbstractChannel | None = None
        self._work: asyncio.Queue = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()
        self.left = asyncio.Event()

    @classmethod
    async def join(cls, code: str | JoinCode, name: str, **options: Any) -> Learner:
        learner = cls(code, name, **options)
        await learner.start()
        return learner

    async def start(self) -> Learner:
        account = await request_account(self.code, self.name)
        self.user = account["user"]
        self.conn = await aiormq.connect(self.code.url(self.user, account["password"]))
        self._report_ch = await started(self.conn, f"learner {self.name}").channel()
        control = await started(self.conn, f"learner {self.name}").channel(publisher_confirms=False)
        queue = t.own(self.name, "control")
        await control.queue_declare(queue, exclusive=True)
        await control.queue_bind(queue, t.CONTROL)
        await control.basic_consume(queue, self._on_control, no_ack=True)
        self._spawn(self._worker())
        await self.report("hello", service_time=self.service_time)
        return self

    # -- reporting --------------------------------------------------------------------------------
    async def report(self, kind: str, **fields: Any) -> None:
        body = json.dumps({"t": kind, "name": self.name, "at": time.time(), **fields}).encode()
        await started(self._report_ch, f"learner {self.name}").basic_publish(
            body, exchange=t.INBOX, routing_key=self.name, properties=Basic.Properties(user_id=self.user)
        )

    # -- control ----------------------------------------------------------------------------------
    async def _on_control(self, message: aiormq.abc.DeliveredMessage) -> None:
        try:
            command = json.loads(message.body)
        except ValueError:
            return
        to = command.get("to")
        if to is not None and self.name not in to:
            return
        handler = getattr(self, "_cmd_" + str(command.get("cmd")), None)
        if handler is not None:
            self._spawn(handler(command))

    async def _cmd_ping(self, command: dict) -> None:
        await self.report("pong", id=command.get("id"))

    async def _cmd_work(self, command: dict) -> None:
        await self._cmd_idle(command)
        if "service_time" in command:
            self.service_time = float(command["service_time"])
        self._work_ch = ch = await started(self.conn, f"learner {self.name}").channel(publisher_confirms=False)
        await ch.basic_qos(prefetch_count=int(command.get("prefetch", 1)))
        await ch.basic_consume(t.WORK, self._work.put)
        await self.report("working", prefetch=int(command.get("prefetch", 1)), service_time=self.service_time)

    async def _cmd_idle(self, command: dict) -> None:
        async with self._acking:
            ch, self._work_ch = self._work_ch, None
        if ch is not None and not ch.is_closed:
            await ch.close()  # unacked work goes back to the queue, to the others

    async def _cmd_subscribe(self, command: dict) -> None:
        if self._fan_ch is None:
            self._fan_ch = ch = await started(self.conn, f"learner {self.name}").channel(publisher_confirms=False)
            queue = t.own(self.name, "fanout")
            await ch.queue_declare(queue, exclusive=True)
            await ch.queue_bind(queue, t.FANOUT)
            await ch.basic_consume(queue, self._on_fanout, no_ack=True)
        await self.report("subscribed")

    async def _on_fanout(self, message: aiormq.abc.DeliveredMessage) -> None:
        await self.report("got", id=json.loads(message.body).get("id"))

    async def _cmd_call(self, command: dict) -> None:
        """Call the instructor's service ``count`` times, ``interval`` s apart, sync (wait for the reply,
        give up after ``timeout``) or async (publish to its queue; done when the broker confirms)."""
        mode, timeout = command.get("mode", "sync"), float(command.get("timeout", 0.5))
        ch = await started(self.conn, f"learner {self.name}").channel()
        replies: dict[str, asyncio.Future] = {}

        async def on_reply(message: aiormq.abc.DeliveredMessage) -> None:
            future = replies.pop(message.header.properties.correlation_id or "", None)
            if future is not None and not future.done():
                future.set_result(True)

        if mode == "sync":
            await ch.basic_consume(REPLY_TO, on_reply, no_ack=True)
        start = time.monotonic()
        calls = []
        for k in range(int(command.get("count", 10))):
            await asyncio.sleep(max(0.0, start + k * float(command.get("interval", 0.05)) - time.monotonic()))
            calls.append(asyncio.ensure_future(self._call(ch, mode, timeout, replies, k)))
        await asyncio.gather(*calls)
        await ch.close()

    async def _call(self, ch: Any, mode: str, timeout: float, replies: dict, k: int) -> None:
        call_id, sent = f"{self.name}-{uuid.uuid4().hex[:8]}", time.time()
        props: dict[str, Any] = {"message_id": call_id, "correlation_id": call_id}
        if mode == "sync":
            replies[call_id] = future = asyncio.get_running_loop().create_future()
            props.update(reply_to=REPLY_TO, expiration=str(int(timeout * 1000)))
        try:
            await ch.basic_publish(
                json.dumps({"id": call_id, "mode": mode}).encode(),
                exchange=t.SERVICE,
                routing_key="call",
                properties=Basic.Properties(**props),
            )
            if mode == "sync":
                await asyncio.wait_for(future, timeout)
            ok = True
        except (asyncio.TimeoutError, aiormq.exceptions.AMQPError):
            replies.pop(call_id, None)
            ok = False
        await self.report("call", id=call_id, mode=mode, ok=ok, sent=sent, k=k)

    async def _cmd_crash(self, command: dict) -> None:
        if self.on_crash == "exit":
            os._exit(137)  # as a killed kernel: no goodbye, the OS closes the socket
        writer = getattr(self.conn, "writer", None)  # aiormq's StreamWriter: abort, as a dead link would
        if writer is not None:
            writer.transport.abort()
        try:
            await started(self.conn, f"learner {self.name}").close()
        except Exception:  # the connection is already gone; that is the point
            pass

    async def _cmd_leave(self, command: dict) -> None:
        await self.leave()

    # -- work -------------------------------------------------------------------------------------
    async def _worker(self) -> None:
        """One message at a time, like a single server: the prefetch window is what waits in the kernel."""
        while True:
            message = await self._work.get()
            if not self._owns(message) or message.channel.is_closed:
                continue  # its channel is closing or closed (idle, leave, crash): the broker requeues it
            await asyncio.sleep(self.service_time)
            try:
                body = json.loads(message.body)
                await self.report("done", id=body.get("id"), redelivered=message.redelivered)
                async with self._acking:
                    if not self._owns(message):
                        continue  # idle or leave gave the channel up meanwhile: its close requeues the message
                    await message.channel.basic_ack(message.delivery_tag)
                self.done += 1
            except aiormq.exceptions.AMQPError:
                continue  # channel gone mid-way: the message is redelivered to someone else

    def _owns(self, message: aiormq.abc.DeliveredMessage) -> bool:
        """Whether ``message`` came on the work channel this learner still holds (idle and leave give it up)."""
        return self._work_ch is not None and message.channel is self._work_ch

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        """A command that failed (e.g. a report nacked because this learner's inbox is full) is counted,
        not raised into the event loop's log: the instructor sees the missing reports."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failed += 1

    async def leave(self) -> None:
        """Say goodbye and close; unacked work returns to the queue for the others."""
        if self.left.is_set():
            return
        self.left.set()
        if self.conn is not None and not self.conn.is_closed:
            try:
                await self._cmd_idle({})
                # the inbox may be full of this learner's own reports (reject-publish nacks the goodbye):
                # say it again until the instructor's side has room, briefly
                await wait_until(self._say_bye, timeout=5, interval=0.05, what="room in the inbox for the goodbye")
            except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, TimeoutError):
                pass  # the goodbye is a courtesy: the broker requeues the unacked work when the connection closes
            await self.conn.close()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def _say_bye(self) -> bool:
        try:
            await self.report("bye")
        except aiormq.exceptions.DeliveryError:  # nacked: the inbox is at its length cap
            return False
        return True

    def __repr__(self) -> str:
        return f"<Learner {self.name} in {self.code.vhost} done={self.done}>"


async def _main() -> None:
    parser = argparse.ArgumentParser(description="One learner of a class, as its own process.")
    parser.add_argument("code")
    parser.add_argument("--name", required=True)
    parser.add_argument("--service-time", type=float, default=0.02)
    args = parser.parse_args()
    learner = await Learner.join(args.code, args.name, service_time=args.service_time, on_crash="exit")
    print("joined", flush=True)
    closed = asyncio.ensure_future(started(learner.conn, f"learner {learner.name}").closing)
    left = asyncio.ensure_future(learner.left.wait())
    await asyncio.wait([closed, left], return_when=asyncio.FIRST_COMPLETED)
    await learner.leave()


if __name__ == "__main__":
    asyncio.run(_main())
