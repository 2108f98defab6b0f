"""Broker profiles: which RabbitMQ release the embedded broker behaves like (``rabbitmq="4.3"`` or ``"3.10"``).

Why: the course promises that its aiormq code runs unchanged on a real RabbitMQ, and what a client can
observe changed between 3.10 (Debian's 3.10.8, the one the conformance suite is checked against here)
and 4.3 (what `apt`, Docker and conda-forge install today). A profile is the small set of switches that
the broker's protocol code reads; everything not listed here behaves the same in both. Each field cites
where the behaviour comes from (release notes and the tagged source of rabbitmq/rabbitmq-server; the
full list of client-visible changes is in the package docstring).

Chosen by ``Broker(rabbitmq=...)``, ``python -m labkit.broker --rabbitmq 4.3``, ``Lab(rabbitmq=...)``
or the environment variable ``LABKIT_RABBITMQ``; the default is :data:`DEFAULT`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV = "LABKIT_RABBITMQ"
DEFAULT = "4.3"
MIB = 1024 * 1024
MAX_MESSAGE_SIZE = 512 * MIB  # RabbitMQ's hard ceiling for max_message_size (rabbit.hrl ?MAX_MSG_SIZE)


@dataclass(frozen=True)
class Profile:
    name: str
    #: the version string connection.start advertises (clients and the conformance suite read it)
    version: str
    #: max_message_size default: 128 MiB in 3.x, 16 MiB since 4.0 (4.0.1 release notes)
    max_message_size: int
    #: deprecated features denied by default in 4.3.0 (release notes "Deprecated Features"):
    #: transient non-exclusive queues and x-queue-master-locator are refused with 541 (connection close)
    deny_transient_nonexcl: bool
    deny_queue_master_locator: bool
    #: global_qos denied: basic.qos global=true is answered qos-ok and applied per consumer
    #: (rabbit_channel.erl 4.3.0, handle_method basic.qos: ``Method#'basic.qos'{global = false}``)
    global_qos: bool
    #: classic queue storage v1 removed in 4.3.0: x-queue-version must be 2
    queue_version_1: bool
    #: quorum queues' delivery limit when none is set (20 since 4.0; none before)
    quorum_default_delivery_limit: int | None
    #: 3.10: x-delivery-count on every quorum delivery, 0 at first, counting every return.
    #: 4.3 (rabbit_fifo v8): first delivery carries no header; redeliveries carry x-acquired-count
    #: (every return) and x-delivery-count only once a delivery *failed* (basic.reject requeue, or
    #: the consumer's channel went away); basic.nack requeue is an explicit return that does not count
    #: toward the delivery limit.
    quorum_counts_v8: bool
    #: 4.2+: a publish to a direct reply-to address counts as routed even if the requester is gone, so
    #: mandatory gets no basic.return (4.2.0 release notes, "Mandatory flag in Direct Reply-To")
    reply_to_always_routed: bool
    #: 4.0+: dead-lettering keeps its own death history (message annotations) and ignores an x-death
    #: header a client (re)published; it also sets x-last-death-* (4.0.1 notes "AMQP 0.9.1 x-death
    #: header"; mc.erl record_death)
    broker_side_deaths: bool


PROFILES = {
    "4.3": Profile(
        "4.3",
        "4.3.0",
        16 * MIB,
        deny_transient_nonexcl=True,
        deny_queue_master_locator=True,
        global_qos=False,
        queue_version_1=False,
        quorum_default_delivery_limit=20,
        quorum_counts_v8=True,
        reply_to_always_routed=True,
        broker_side_deaths=True,
    ),
    "3.10": Profile(
        "3.10",
        "3.10.8",
        128 * MIB,
        deny_transient_nonexcl=False,
        deny_queue_master_locator=False,
        global_qos=True,
        queue_version_1=True,
        quorum_default_delivery_limit=None,
        quorum_counts_v8=False,
        reply_to_always_routed=False,
        broker_side_deaths=False,
    ),
}


def resolve(value: str | Profile | None = None, *, name: str = "rabbitmq") -> Profile:
    """The profile for ``value`` ("4.3" or "3.10"); None means ``$LABKIT_RABBITMQ`` or :data:`DEFAULT`."""
    if isinstance(value, Profile):
        return value
    source = name
    if value is None:
        value, source = os.environ.get(ENV) or DEFAULT, ENV if os.environ.get(ENV) else name
    key = str(value).strip() if isinstance(value, (str, float)) else value
    if key not in PROFILES:
        raise ValueError(
            f"{source} must be one of {', '.join(repr(k) for k in PROFILES)} "
            f"(the RabbitMQ release to behave like), got {value!r}"
        )
    return PROFILES[key]


DEPRECATION_TEXT = (
    "Feature `{feature}` is deprecated.\n"
    "By default, this feature is not permitted anymore.\n"
    "The feature will be removed from a future major RabbitMQ version, regardless of the configuration; "
    "actual version to be determined.\n"
    "To continue using this feature when it is not permitted by default, set the following parameter in "
    "your configuration:\n"
    '    "deprecated_features.permit.{feature} = true"'
)
"""RabbitMQ 4.3's message for a denied deprecated feature (rabbit_deprecated_features.erl,
generate_warnings1, phase denied_by_default); the reply text truncates it to 255 characters."""


def deprecated(feature: str) -> str:
    return DEPRECATION_TEXT.format(feature=feature)
