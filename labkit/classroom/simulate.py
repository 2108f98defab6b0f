"""A simulated class: N learner processes on this machine, each a real ``Learner`` with its own connection.

Why processes, not tasks: a class is N kernels that crash independently; a killed process (SIGKILL, no
goodbye) is what the "consumer killed mid-run" experiment needs, and the rehearsal then exercises the broker
with N real clients. Service times are spread evenly over ``service_times`` so the class is heterogeneous
(which is what makes prefetch matter).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from ..lifecycle import Part, wait_until
from .joincode import JoinCode


class SimulatedClass(Part):
    """``sim = await lab.start(SimulatedClass(classroom.code, 8))``; ``lab.stop()`` (or ``sim.stop()``) ends it."""

    name = "simulated class"

    def __init__(
        self, code: JoinCode | str, n: int, service_times: tuple[float, float] = (0.01, 0.04), prefix: str = "sim"
    ) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        low, high = service_times
        if not 0 < low <= high:
            raise ValueError(f"service_times must be (low, high) with 0 < low <= high, got {service_times!r}")
        self.code = JoinCode.parse(code)
        times = [low + (high - low) * k / max(1, n - 1) for k in range(n)]
        self.service_times = {f"{prefix}-{k:02d}": s for k, s in enumerate(times)}
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def running(self) -> bool:
        return bool(self.alive)

    async def start(self) -> SimulatedClass:
        self._check_stopped()
        for name, service_time in self.service_times.items():
            self.spawn(name, service_time)
        return self

    def spawn(self, name: str, service_time: float) -> None:
        cmd = [
            sys.executable,
            "-m",
            "labkit.classroom.learner",
            str(self.code),
            "--name",
            name,
            "--service-time",
            str(service_time),
        ]
        self.procs[name] = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def kill(self, name: str) -> None:
        """SIGKILL one learner: no goodbye, its connection drops, its unacked work is requeued."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    @property
    def alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask nicely (SIGTERM), then SIGKILL whatever is left; reap every child."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        try:
            await wait_until(lambda: not self.alive, timeout=timeout, interval=0.05, what="the learners exiting")
        except TimeoutError:
            pass  # killed below
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
