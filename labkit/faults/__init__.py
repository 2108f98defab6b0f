"""A TCP fault proxy in the spirit of Toxiproxy: put it in front of any link (HTTP or AMQP) and break it.

Why a proxy and not flags in the services: a real network fault happens *between* programs, so the
caller's real client library (aiohttp, aiormq) must meet a real refused connection, a real reset, a real
silence. The proxy listens on 127.0.0.1, opens one upstream connection per client connection and pumps
bytes both ways through the active "toxics" (Toxiproxy's model: a kind, attributes, a direction and a
probability, switched live):

- ``Latency(ms, jitter_ms)`` delays every chunk by ms ± jitter (pipelined: chunks are not serialised
  behind each other's delay); default direction downstream, so a request/response gains ≈ ms.
- ``Blackhole()`` accepts and reads but forwards nothing until removed: callers time out.
- ``Bandwidth(kbps)`` limits throughput to kbps kilobits (1000 bits) per second.
- ``Reset(probability)`` closes connections with a TCP RST when they next carry data.

Directions follow Toxiproxy: ``upstream`` is client → server, ``downstream`` server → client, ``both``.
``probability`` (Toxiproxy's "toxicity") is drawn once per connection and toxic, from a seeded RNG.
A link that is *down* is a state of the proxy, not a toxic: ``proxy.down()`` refuses new connections
(the listening socket is closed, the port held) and resets existing ones; ``proxy.up()`` listens again.
``schedule()`` switches toxics, and the link down and up (a ``(t_start, t_end, DOWN)`` entry), on the
experiment timeline; ``bands()`` says when each was active, so plots can shade fault windows.
"""

from labkit.faults.link import Connection, Pipe
from labkit.faults.proxy import PROXY_TRANSITIONS, FaultProxy, ProxyState
from labkit.faults.timeline import DOWN, Activation
from labkit.faults.toxics import DIRECTIONS, Bandwidth, Blackhole, Latency, Reset, Toxic

__all__ = [
    "DIRECTIONS",
    "DOWN",
    "PROXY_TRANSITIONS",
    "Activation",
    "Bandwidth",
    "Blackhole",
    "Connection",
    "FaultProxy",
    "Latency",
    "Pipe",
    "ProxyState",
    "Reset",
    "Toxic",
]
