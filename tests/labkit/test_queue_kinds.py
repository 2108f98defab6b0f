"""Every queue labkit and the chapters declare is durable, exclusive, quorum or stream (RabbitMQ 4.3 refuses
transient non-exclusive queues, aiormq's default), and per-run queues expire."""

import ast
import asyncio
import inspect

import aiormq
import pytest
from code_sources import code_sources

from labkit.queues import RUN_QUEUE_EXPIRES_MS, declare_run_queue, run_queue_arguments

DECLARE = inspect.signature(aiormq.Channel.queue_declare)


def _parse(source):
    return compile(source, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _is_true(node):
    return isinstance(node, ast.Constant) and node.value is True


def transient_non_exclusive(tree):
    """Line numbers of queue_declare calls that are not passive, durable or exclusive (literally True)."""
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "queue_declare"
        ):
            continue
        if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
            found.append(node.lineno)  # **options: cannot tell, so not allowed
            continue
        bound = DECLARE.bind_partial(None, *node.args, **{k.arg: k.value for k in node.keywords})
        if not any(_is_true(bound.arguments.get(flag)) for flag in ("passive", "durable", "exclusive")):
            found.append(node.lineno)
    return sorted(found)


def test_the_check_finds_aiormq_defaults_and_accepts_the_four_kinds():
    bad = _parse(
        "await ch.queue_declare('q')\nch.queue_declare('q', auto_delete=True, durable=False)\n"
        "ch.queue_declare('q', arguments={'x-queue-type': 'quorum'})\nch.queue_declare(**kw)"
    )
    assert transient_non_exclusive(bad) == [1, 2, 3, 4]
    good = _parse(
        "ch.queue_declare('q', durable=True, arguments={'x-expires': 1})\n"
        "ch.queue_declare('q', exclusive=True)\nch.queue_declare('q', passive=True)\n"
        "ch.queue_declare('q', durable=True, arguments={'x-queue-type': 'quorum'})"
    )
    assert transient_non_exclusive(good) == []


def test_no_transient_non_exclusive_queue_is_declared_in_labkit_or_the_chapters():
    offenders = [
        f"{where}{f' cell {cell}' if cell else ''}: line {line}"
        for where, cell, source in code_sources()
        for line in transient_non_exclusive(_parse(source))
    ]
    assert not offenders, (
        "RabbitMQ 4.3 refuses these (541): declare durable (labkit.queues.declare_run_queue), "
        "exclusive, quorum or stream instead:\n" + "\n".join(offenders)
    )


def test_run_queue_arguments_expire_unless_a_stream():
    assert run_queue_arguments() == {"x-expires": RUN_QUEUE_EXPIRES_MS}
    assert run_queue_arguments({"x-max-length": 3}, 500) == {"x-max-length": 3, "x-expires": 500}
    assert run_queue_arguments({"x-expires": 9}) == {"x-expires": 9}
    assert run_queue_arguments({"x-queue-type": "stream"}) == {"x-queue-type": "stream"}
    with pytest.raises(ValueError, match="arguments must be a dict"):
        run_queue_arguments([("x-expires", 1)])
    with pytest.raises(ValueError, match="expires_ms"):
        run_queue_arguments(expires_ms=0)


async def test_a_run_queue_is_durable_redeclarable_and_expires(amqp_url, unique):
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = unique("run")
        await declare_run_queue(channel, queue, expires_ms=300)
        await declare_run_queue(channel, queue, expires_ms=300)  # the same declaration again: fine
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await channel.queue_declare(queue)  # transient: not equivalent to the durable queue
        channel = await connection.channel()
        # Any declare, passive too, counts as a use and restarts the countdown: so look once, after it ran out.
        await asyncio.sleep(1.5)
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await channel.queue_declare(queue, passive=True)
    finally:
        await connection.close()
