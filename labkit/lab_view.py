"""How a lab shows itself: a one-line ``repr`` and the HTML table a notebook shows when a cell ends with ``lab``.

Kept apart from :mod:`labkit.lab` because it is presentation only; the URL is shown with any password
masked, because a notebook's output gets shared.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from labkit.lab import Lab

__all__ = ["lab_html", "lab_repr"]


def lab_repr(lab: Lab) -> str:
    """``<Lab running seed=.. broker=.. amqp_url=.. services=[..] consumers=N proxies=N>``."""
    state = "running" if lab.running else "stopped"
    return (
        f"<Lab {state} seed={lab.seed} broker={lab.broker_kind} amqp_url={_without_password(lab.amqp_url)} "
        f"services={list(lab.services)} consumers={len(lab.consumers)} proxies={len(lab.proxies)}>"
    )


def lab_html(lab: Lab) -> str:
    """What is running, at a glance: its services, consumers and proxies in a table."""
    rows = [
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(svc.url if svc._runner else 'stopped')}</td>"
        f"<td>{svc.service_time * 1e3:g} ms {svc.distribution}</td><td>{svc.capacity or '∞'}</td>"
        f"<td>{len(svc.records)}</td><td>{sum(r.ok for r in svc.records)}</td></tr>"
        for name, svc in lab.services.items()
    ]
    rows += [
        f"<tr><td>{html.escape(c.name)}</td><td>queue {html.escape(c.queue)}</td>"
        f"<td>{c.work_time * 1e3:g} ms {c.distribution}</td><td>prefetch {c.prefetch}</td>"
        f"<td>{len(c.records)}</td><td>{c.processed}</td></tr>"
        for c in lab.consumers
    ]
    rows += [
        f"<tr><td>{html.escape(p.name)}</td><td>proxy :{p.port}</td><td colspan=4>"
        f"{html.escape(('down ' if p.is_down else '') + repr(p.toxics))}</td></tr>"
        for p in lab.proxies
    ]
    state = "running" if lab.running else "stopped"
    head = (
        f"<b>Lab</b> ({state}, seed {lab.seed}) · broker: {html.escape(str(lab.broker_kind))} "
        f"<code>{html.escape(_without_password(lab.amqp_url))}</code>"
    )
    if not rows:
        return head
    return (
        head + "<table><tr><th>part</th><th>where</th><th>work</th><th>capacity</th><th>records</th>"
        "<th>ok</th></tr>" + "".join(rows) + "</table>"
    )


def _without_password(url: str | None) -> str:
    """The URL fit for a notebook's output (which gets shared): any password masked."""
    if not url:
        return str(url)
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url
