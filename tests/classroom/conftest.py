"""Brokers for the classroom tests: the embedded broker always, RabbitMQ 3.10 on 127.0.0.1 when it answers
(with its management API enabled: the classroom provisions through it)."""

from __future__ import annotations

import socket

import pytest

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
MANAGEMENT_URL = "http://127.0.0.1:15672/"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def rabbitmq_or_skip() -> None:
    if not _listening(5672):
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    if not _listening(15672):
        pytest.skip("RabbitMQ's management API is off (rabbitmq-plugins enable rabbitmq_management; see how-to-run)")


@pytest.fixture(params=["embedded", "rabbitmq"])
def broker_kind(request) -> str:
    if request.param == "rabbitmq":
        rabbitmq_or_skip()
    return request.param
