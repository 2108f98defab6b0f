"""One line of hint under an AMQP error in a notebook, naming the fix; the error itself is unchanged.

Why: RabbitMQ 4.3 refuses what aiormq's ``queue_declare`` declares by default (a transient, non-exclusive queue) with
"541 INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated ...", which tells a learner what
was refused but not what to write instead. The lab shows RabbitMQ's own error, exactly as the broker
sent it (the same text on the embedded broker's 4.3 profile and on a real RabbitMQ 4.3), and adds one
line below the traceback. ``install()`` registers the display with IPython when a Lab starts in a
kernel; outside IPython it does nothing.
"""

from __future__ import annotations

from typing import Any

import aiormq

HINTS = {
    "transient_nonexcl_queues": (
        "Hint: RabbitMQ 4.3 refuses transient non-exclusive queues. Declare the queue durable=True (with "
        "arguments={'x-expires': ms} if it is per-run) or exclusive=True (private to this connection)."
    ),
    "queue_master_locator": ("Hint: RabbitMQ 4.3 refuses x-queue-master-locator; use x-queue-leader-locator instead."),
}


def hint_for(exc: BaseException) -> str | None:
    """The hint line for an AMQP error a deprecated feature caused, or None."""
    if not isinstance(exc, aiormq.exceptions.AMQPError):
        return None
    text = " ".join(str(arg) for arg in exc.args)
    return next((hint for feature, hint in HINTS.items() if f"`{feature}`" in text), None)


def _show(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
    """IPython custom exception handler: the usual traceback, plus the hint line when there is one.
    IPython leaves the display to the handler (run_code ignores what it returns); ``_showtraceback`` is
    what ipykernel overrides to send the error output to the notebook."""
    stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    hint = hint_for(value)
    if hint:
        stb = [*stb, hint]
    shell._showtraceback(etype, value, stb)
    return stb


def install() -> bool:
    """Show hints under AMQP errors in this IPython kernel; False when not running under IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((aiormq.exceptions.AMQPError,), _show)
    return True
