"""What differs between RabbitMQ 3.10 and 4.3 at the declaration: deprecated features that 4.3 denies
by default and the classic queue storage v1 it removed (release notes 4.3.0; texts from
rabbit_deprecated_features.erl and rabbit_amqqueue.erl at tag v4.3.0). Each case runs on the embedded
broker in both profiles and, against a RabbitMQ, with the expectations of its version.
"""

import aiormq
import pytest

pytestmark = pytest.mark.profiles

DENIED = (
    "INTERNAL_ERROR - Feature `{feature}` is deprecated.\n"
    "By default, this feature is not permitted anymore.\n"
    "The feature will be removed from a future major RabbitMQ version, regardless of the configuration; "
    "actual version to be determined.\n"
    "To continue using this feature when it is not permitted by default, set the following parameter in "
    "your configuration:\n"
    '    "deprecated_features.permit.{feature} = true"'
)


def denied(feature: str) -> str:
    """The reply text 4.3 sends: the warning, cut to 255 characters like every AMQP reply text."""
    full = DENIED.format(feature=feature)
    return full if len(full) <= 255 else full[:252] + "..."


async def test_the_broker_announces_its_version(client, profile):
    connection = await client.connect()
    assert str(connection.server_properties["version"]).startswith("4." if profile == "4.3" else "3.")


async def test_transient_non_exclusive_queue(client, profile):
    # aiormq's queue_declare defaults (durable=False, exclusive=False): 4.3 closes the *connection* with
    # 541; 3.10 declares the queue.
    connection = await client.connect()
    channel = await connection.channel()
    name = client.queue_name()
    if profile == "3.10":
        assert (await channel.queue_declare(name)).queue == name
        return
    with pytest.raises(aiormq.exceptions.ConnectionInternalError) as refused:
        await channel.queue_declare(name)
    assert refused.value.args[0] == denied("transient_nonexcl_queues")
    assert connection.is_closed


@pytest.mark.parametrize(
    "options", [{"durable": True}, {"exclusive": True}, {"durable": True, "arguments": {"x-expires": 60_000}}]
)
async def test_durable_or_exclusive_queues_work_on_both(client, profile, options):
    channel = await client.channel()
    name = client.queue_name()
    assert (await channel.queue_declare(name, **options)).queue == name


async def test_redeclaring_an_existing_transient_queue_is_not_checked_again(client, profile):
    # The deprecation check runs only when a queue is created (rabbit_channel: not_found -> declare).
    channel = await client.channel()
    name = client.queue_name()
    await channel.queue_declare(name, exclusive=True)
    assert (await channel.queue_declare(name, exclusive=True)).queue == name


async def test_queue_master_locator(client, profile):
    connection = await client.connect()
    channel = await connection.channel()
    name = client.queue_name()
    arguments = {"x-queue-master-locator": "client-local"}
    if profile == "3.10":
        assert (await channel.queue_declare(name, durable=True, arguments=arguments)).queue == name
        return
    with pytest.raises(aiormq.exceptions.ConnectionInternalError) as refused:
        await channel.queue_declare(name, durable=True, arguments=arguments)
    assert refused.value.args[0] == denied("queue_master_locator")


async def test_classic_queue_version_1(client, profile):
    channel = await client.channel()
    name = client.queue_name()
    if profile == "3.10":
        assert (await channel.queue_declare(name, durable=True, arguments={"x-queue-version": 1})).queue == name
        return
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.queue_declare(name, durable=True, arguments={"x-queue-version": 1})
    assert refused.value.args[0] == (
        f"PRECONDITION_FAILED - invalid arg 'x-queue-version' for queue '{name}' in "
        "vhost '/': \"unsupported queue version '1'\""
    )


async def test_queue_version_2_and_queue_mode_are_accepted(client, profile):
    # The 4.3.0 release notes say x-queue-mode fails; the 4.3.0 code still lists it among the classic
    # queue's arguments and validates nothing about it (rabbit_classic_queue:capabilities), so it is
    # accepted and ignored. Re-check on a real 4.3 (the CI parity job).
    channel = await client.channel()
    name = client.queue_name()
    arguments = {"x-queue-version": 2, "x-queue-mode": "lazy"}
    assert (await channel.queue_declare(name, durable=True, arguments=arguments)).queue == name
