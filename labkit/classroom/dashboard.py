"""The instructor's live dashboard: queue depth against the fluid model, per-learner throughput and lag,
errors, and a table of the class.

Why two ways to be live: plotly's ``FigureWidget`` needs the ``anywidget`` package and a live kernel; a
display handle (``display(fig, display_id=True)`` then ``handle.update(fig)``) redraws in place in
JupyterLab, VS Code and Classic alike and leaves a drawn figure in the saved notebook and the built book.
The dashboard uses a FigureWidget when it can and the display handle otherwise (with the figure's raw
mime bundle: plotly's own display hook ignores display ids); both show the same figure. Bars are one per learner, so 1 or 60 learners draw the same way (the x axis labels thin out).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from .. import plots, render
from .instructor import Classroom

REFRESH = 0.25  # seconds between redraws while an experiment runs


class Dashboard:
    """``dash = Dashboard(classroom); dash.show()``; experiments call ``dash.depth(t, n)``; ``dash.refresh()``."""

    def __init__(self, classroom: Classroom) -> None:
        self.classroom = classroom
        self.depths: list[tuple[float, int]] = []
        self.model: list[tuple[float, float]] = []
        self.lag: dict[str, float] = {}
        self._handle: Any = None
        self._last = 0.0
        self.figure = self._build()

    def _build(self) -> go.Figure:
        fig = make_subplots(
            rows=3,
            cols=2,
            vertical_spacing=0.1,
            horizontal_spacing=0.08,
            specs=[[{}, {}], [{}, {}], [{"type": "table", "colspan": 2}, None]],
            row_heights=[0.35, 0.35, 0.3],
            subplot_titles=(
                "Work queue depth",
                "Messages done per learner",
                "Fan-out lag per learner (median)",
                "Errors per learner",
                "",
            ),
        )
        c = plots.COLORS
        fig.add_trace(go.Scatter(name="measured depth", mode="lines", line={"color": c[0]}), 1, 1)
        fig.add_trace(go.Scatter(name="fluid model", mode="lines", line={"color": "black", "dash": "dash"}), 1, 1)
        fig.add_trace(go.Bar(name="done", marker_color=c[2], showlegend=False), 1, 2)
        fig.add_trace(go.Bar(name="lag", marker_color=c[3], showlegend=False), 2, 1)
        fig.add_trace(go.Bar(name="errors", marker_color=c[1], showlegend=False), 2, 2)
        fig.add_trace(
            go.Table(
                header={"values": ["learner", "present", "service time (ms)", "done", "errors"]},
                cells={"values": [[], [], [], [], []]},
            ),
            3,
            1,
        )
        fig.update_xaxes(title_text="time since the spike (s)", row=1, col=1)
        fig.update_yaxes(title_text="messages ready", row=1, col=1)
        fig.update_yaxes(title_text="messages", row=1, col=2)
        fig.update_yaxes(title_text="lag (ms)", row=2, col=1)
        fig.update_yaxes(title_text="reports refused", row=2, col=2)
        fig.update_layout(height=860, title=f"Class {self.classroom.class_id}", legend={"x": 0.3, "y": 1.0})
        try:
            return go.FigureWidget(fig)
        except ImportError:  # plotly's FigureWidget needs anywidget; the display handle redraws instead
            return fig

    def show(self) -> Any:
        from IPython.display import display

        if isinstance(self.figure, go.FigureWidget):
            display(self.figure)
        else:
            self._handle = display(self._bundle(), raw=True, display_id=True)
        return self

    def _bundle(self) -> dict:
        """The figure as a raw mime bundle: displaying the Figure object itself would go through plotly's
        ``_ipython_display_``, which ignores display ids and appends a new figure on every update."""
        return pio.renderers[render.activate(False)].to_mimebundle(self.figure.to_dict())

    def depth(self, t: float, n: int) -> None:
        """One queue-depth sample (experiments.run_work's ``sample``); redraws at most every REFRESH s.
        A sample earlier than the last one starts a new run: the old run and its model are cleared."""
        if self.depths and t < self.depths[-1][0]:
            self.depths, self.model = [], []
        self.depths.append((t, n))
        if time.monotonic() - self._last >= REFRESH:
            self.refresh()

    def refresh(self) -> None:
        self._last = time.monotonic()
        members = sorted(self.classroom.members.values(), key=lambda m: m.name)
        names = [m.name for m in members]
        fig = self.figure
        with fig.batch_update() if isinstance(fig, go.FigureWidget) else contextlib.nullcontext():
            fig.data[0].x, fig.data[0].y = [d[0] for d in self.depths], [d[1] for d in self.depths]
            fig.data[1].x, fig.data[1].y = [m[0] for m in self.model], [m[1] for m in self.model]
            fig.data[2].x, fig.data[2].y = names, [m.done for m in members]
            fig.data[3].x, fig.data[3].y = names, [1000 * self.lag.get(n, 0.0) for n in names]
            fig.data[4].x, fig.data[4].y = names, [m.errors for m in members]
            fig.data[5].cells.values = [
                names,
                ["yes" if m.present else "left" for m in members],
                [round(1000 * m.service_time) for m in members],
                [m.done for m in members],
                [m.errors for m in members],
            ]
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)
