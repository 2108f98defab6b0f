"""The class's names, queue arguments and permission regexes: what each account may touch.

Why one module: the safety of a class is this table. A learner ``ana`` may configure only ``l.ana.*``
(her control, fan-out and other queues), write only to ``l.ana.*`` (to bind them), ``class.in`` (reports,
stamped with a broker-checked user_id) and ``class.service`` (calls), and read only ``l.ana.*``,
``class.control`` and ``class.fanout`` (to bind) and ``class.work`` (to compete for work). So she cannot
read, purge or delete another learner's queues, the instructor's inboxes (``class.in.*``) or the join
queue: RabbitMQ answers 403 ACCESS_REFUSED. Every queue is durable with x-expires, or exclusive:
RabbitMQ 4.3 refuses transient non-exclusive queues. Containment: every queue a learner can fill has
x-max-length and x-max-length-bytes with overflow reject-publish (a flood fills only the flooder's own
inbox and is nacked), the instructor consumes each inbox with a per-consumer prefetch (a flooder gets at
most its round-robin share of the instructor's kernel: the per-learner rate cap), and each learner user has a max-channels limit (a thousand channels close only
the flooder's connection, 530 NOT_ALLOWED).
"""

from __future__ import annotations

CONTROL = "class.control"  # fanout: instructor -> every learner's l.<name>.control
FANOUT = "class.fanout"  # fanout: the fan-out experiment
WORK = "class.work"  # queue: competing consumers (the class is the consumer pool)
INBOX = "class.in"  # direct exchange: learner reports, routing key = learner name
SERVICE = "class.service"  # direct exchange + queue: the instructor's service (temporal coupling)
JOIN = "class.join"  # direct exchange + queue: join requests from the join account

EXPIRES_MS = 6 * 3600 * 1000  # per-class queues vanish 6 h after their last use
INBOX_MAX_LENGTH = 5000  # reports waiting for the instructor, per learner
INBOX_MAX_BYTES = 2 * 1024 * 1024
INBOX_PREFETCH = 20  # reports per learner in the instructor's kernel at once (the rate cap)
MAX_REPORT_BYTES = 4096  # the instructor drops (and counts) bigger reports
LEARNER_MAX_CHANNELS = 8


def durable_args(max_length: int | None = None, max_bytes: int | None = None) -> dict:
    args: dict = {"x-expires": EXPIRES_MS}
    if max_length is not None:
        args.update({"x-max-length": max_length, "x-overflow": "reject-publish"})
    if max_bytes is not None:
        args.update({"x-max-length-bytes": max_bytes, "x-overflow": "reject-publish"})
    return args


def inbox(name: str) -> str:
    return f"{INBOX}.{name}"


def own(name: str, what: str) -> str:
    """A learner's own queue, e.g. ``l.ana.control``."""
    return f"l.{name}.{what}"


def learner_permissions(name: str) -> dict[str, str]:
    mine = rf"l\.{name}\..*"
    return {
        "configure": rf"^{mine}$",
        "write": rf"^({mine}|class\.in|class\.service)$",
        "read": rf"^({mine}|class\.control|class\.fanout|class\.work)$",
    }


JOIN_PERMISSIONS = {"configure": "^$", "write": r"^class\.join$", "read": "^$"}
FULL_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}
