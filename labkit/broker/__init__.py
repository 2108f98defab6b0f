"""``labkit.broker``: an embedded AMQP 0-9-1 broker (on pamqp) that behaves like RabbitMQ 4.3 (or 3.10) for
everything the course shows, so the same aiormq code runs against it by default and against a real
RabbitMQ when ``AMQP_URL`` is set.

    broker = await Broker().start()      # 127.0.0.1, ephemeral port
    broker.url                           # amqp://guest:guest@127.0.0.1:PORT/
    broker.queues()                      # depths, consumers, rates per queue
    broker.overview()                    # broker-wide totals
    await broker.reset()                 # fresh state between experiments
    await broker.stop()

Run on its own (as the lab does, in its own process): ``python -m labkit.broker --port 5673``.

Modules, one concern each:

- the wire: ``frames`` (stream framing, hot-path codecs), ``connection`` (one client connection: frame
  routing, channels, flow control, close) with ``handshake`` (start, tune, open, SASL) and ``heartbeat``;
- a channel: ``channel`` (state machine, dispatch, confirm and tx modes) and what it owns: ``content``
  (method + header + body frames into one publish), ``publishing`` (routing, returns, confirms),
  ``deliveries`` (delivery tags, ack / nack / reject / recover), ``consuming`` (consume, cancel, qos),
  ``topology`` (exchange and queue methods), ``tx`` (transactions);
- the virtual host: ``vhost`` (exchanges, queues, bindings, dead-letter routing, direct reply-to),
  ``exchange`` (routing), ``equivalence`` (redeclaration checks), ``xdeath`` (x-death headers);
- queues: ``queue`` (a classic queue's life), ``ready`` (its ready line, plain or by priority),
  ``consumer`` (consumer credit and order), ``queue_arguments`` and ``declare`` (the checks of a new
  queue, in RabbitMQ's order), ``expiration`` (message TTL), ``quorum`` and ``stream`` (the other types);
- durability: ``store`` (the log), ``logformat`` (its bytes), ``durable_topology`` (what survives a
  restart, and its replay);
- the rest: ``message``, ``profiles`` (3.10 / 4.3), ``auth`` (users, vhosts, permissions), ``flow``
  (memory alarm), ``tap`` (the broker's side of a history), ``errors`` (reply codes), ``server``
  (``Broker``), ``process`` (the broker in a child process), ``admin`` (the JSON admin endpoint).

Profiles (``labkit.broker.profiles``): ``Broker(rabbitmq="4.3")`` (the default; also ``--rabbitmq``,
``Lab(rabbitmq=...)`` and ``$LABKIT_RABBITMQ``) behaves like RabbitMQ 4.3 with a default configuration;
``rabbitmq="3.10"`` like Debian's 3.10.8, against which the conformance suite was checked here.

What an AMQP 0-9-1 client of this course can observe between 3.10 and 4.3, from the release notes of
4.0.1, 4.1.0, 4.2.0 and 4.3.0 (rabbitmq-server ``release-notes/``) and the code at tags v3.10.8 and
v4.3.0 (files named). [P] = the 4.3 profile does it, [-] = not modelled, with the reason:

- 4.3, deprecated features denied by default (rabbit_deprecated_features.erl, denied_by_default text):
  - [P] ``transient_nonexcl_queues``: declaring a new queue with durable=false, exclusive=false (aiormq's
    ``queue_declare()`` defaults) -> Connection.Close 541 INTERNAL_ERROR, "Feature
    `transient_nonexcl_queues` is deprecated.\nBy default, this feature is not permitted anymore.\n..."
    cut to 255 characters; the *connection* closes (541 is a hard error). Checked after argument-type
    checks and before the quorum/stream property checks (rabbit_amqqueue:declare); redeclaring an
    existing queue is not checked.
  - [P] ``queue_master_locator``: x-queue-master-locator on a new classic queue -> 541, connection.
  - [P] ``global_qos``: basic.qos global=true -> qos-ok, applied per consumer (rabbit_channel.erl).
- 4.3, CQv1 removed: [P] x-queue-version other than 2 -> 406 "unsupported queue version '1'". The notes
  say x-queue-mode fails too; the 4.3.0 code accepts and ignores it (classic queue capabilities): so does
  the profile.
- 4.3, rabbit_fifo v8: [P] basic.nack with requeue is an explicit return, not counted toward the delivery
  limit; basic.reject with requeue and a consumer whose channel goes away are failed deliveries and count.
  [P] Headers: none at first delivery; then x-acquired-count (every return) and x-delivery-count (failed
  deliveries). 3.10: x-delivery-count = returns from the first return on, and 0 on a first basic.get.
- 4.0: [P] quorum queues have a default delivery limit of 20 (dead-lettered with reason delivery_limit, or
  dropped). [P] max_message_size default 16 MiB (3.x: 128 MiB); refusal "message size N is larger than
  configured max size M", 406 after the whole body arrived (the lab drops the body frames as they come).
  [P] RabbitMQ no longer interprets an x-death header a client republishes: dead-lettering counts from
  its own history of the message (mc.erl record_death) and adds x-last-death-reason/-queue/-exchange.
  [-] Quorum queues honour message priority (two levels in 4.0-4.2, strict in 4.3); x-max-priority on a
  quorum queue is still refused in both. [-] Classic mirroring (ha-* policies) removed: no policies here.
- 4.1: [-] frame_max before authentication raised to 8192 (clients that ask for less than 8192 fail):
  aiormq asks for 131072.
- 4.2: [P] a mandatory publish to a direct reply-to address counts as routed even if the requester is
  gone (no basic.return). [-] Bindings to reply-to pseudo-queues are refused (4.3); the lab never allowed
  them to exist as queues.
- 4.3: [-] x-modulus-hash exchange type in core; quorum delayed retry (x-delayed-retry-*) and consumer
  timeouts; none used by the course.

Same in both profiles (checked against 3.10.8, read in the 4.3.0 code): transactions (tx.*), unbind and
delete of missing entities answer -ok, channel_max limits how many channels are open (not their numbers),
exclusive access is checked before equivalence (405 before 406), reply texts cut to 252 characters + "...".

Durability (``store``, with ``Broker(data_dir=...)`` / ``--data-dir``; the Lab always gives its broker one):
durable exchanges, queues and bindings and persistent messages in durable queues of the vhost "/" survive
a crash (kill -9) and a restart; transient ones vanish; a persistent message is confirmed (and tx.commit
answered) only after its log record is fsynced. Without a data directory nothing is persisted.

Recovered messages come back redelivered=True (RabbitMQ flags them so after a crash). A killed broker's
connections are reset (SO_LINGER 0, like RabbitMQ's default listener options).

Where it knowingly differs from RabbitMQ: stream contents, vhosts other than "/", users and permissions
are not persisted; after a clean stop every recovered message is flagged redelivered (RabbitMQ: only
those delivered before); the memory alarm counts stored message bytes, not process
memory; vhosts, users and permissions (``auth``) without topic permissions or per-user connection
limits; no CC/BCC headers; argument *values* are checked after the
declaration checks above (RabbitMQ checks them first; only the order of two refusals of one
declaration differs). Texts that cannot match are listed in tests/conformance/README.md.
"""

from .errors import AMQPError
from .server import Broker

__all__ = ["Broker", "AMQPError"]
