"""The hint line under RabbitMQ 4.3's refusal of a transient non-exclusive queue (labkit.hints)."""

import aiormq
import pytest
from IPython.core.interactiveshell import InteractiveShell

from labkit import hints
from labkit.broker import Broker


@pytest.fixture
async def refusal():
    """The exception aiormq raises when the embedded broker's 4.3 profile refuses aiormq's default queue."""
    broker = await Broker(rabbitmq="4.3").start()
    try:
        connection = await aiormq.connect(broker.url)
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ConnectionInternalError) as refused:
            await channel.queue_declare("per-run")
        await connection.close()
    finally:
        await broker.stop()
    return refused.value


async def test_the_hint_names_the_fix_and_the_error_is_rabbitmqs(refusal):
    assert refusal.args[0].startswith("INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.")
    assert "durable=True" in hints.hint_for(refusal) and "exclusive=True" in hints.hint_for(refusal)


def test_no_hint_for_other_errors():
    assert hints.hint_for(aiormq.exceptions.ChannelNotFoundEntity("NOT_FOUND - no queue 'q' in vhost '/'")) is None
    assert hints.hint_for(ValueError("transient_nonexcl_queues")) is None


async def test_the_notebook_shows_the_traceback_then_one_hint_line(refusal, capsys):
    shell = InteractiveShell.instance()
    try:
        assert hints.install()
        shell.user_ns["refusal"] = refusal
        shell.run_cell("raise refusal")
        shown = capsys.readouterr().out.rstrip().splitlines()
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()
    assert any("transient_nonexcl_queues" in line for line in shown)  # RabbitMQ's error, unchanged
    assert shown[-1] == hints.HINTS["transient_nonexcl_queues"]
