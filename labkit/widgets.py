"""Explore panels: sliders + a Run button + the new figure, to re-run an experiment with other parameters.

Why: "what if the downstream were twice as slow?" is best answered by trying it. A panel wraps one
experiment -- an ``async def run(**params) -> figure`` -- in ipywidgets. Notebooks run cells with
top-level ``await`` on the kernel's event loop, so a button cannot block on the experiment: a click
*schedules* ``run`` on that running loop, disables the button while it runs, and shows the result (or the
error) in the panel's own output area. Nothing here needs a running loop at construction time.

    async def experiment(rate, service_time):
        ...
        return plots.latency_cdf({...})

    panel = Panel(experiment, rate=(10, 200, 10, 50), service_time=(0.01, 0.2, 0.01, 0.05))
    display(panel)
    await panel.run()         # one run now, so the page (and the built book) shows a figure
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Awaitable, Callable
from numbers import Real
from typing import Any

import ipywidgets as w

__all__ = ["Panel", "control"]


def control(name: str, spec: Any) -> w.ValueWidget:
    """The widget for one parameter.

    ``(min, max, step, value)`` -> a slider (integer if all four are ints); a list of options -> a
    dropdown (first option selected); ``True``/``False`` -> a checkbox; an ipywidgets widget is used as is.
    """
    if isinstance(spec, w.ValueWidget):
        return spec
    if isinstance(spec, bool):
        return w.Checkbox(value=spec, description=name, indent=False)
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{name} must list at least one option, got []")
        return w.Dropdown(options=spec, value=spec[0], description=name, style={"description_width": "initial"})
    numbers = isinstance(spec, tuple) and all(isinstance(v, Real) and not isinstance(v, bool) for v in spec)
    if numbers and len(spec) == 4:
        lo, hi, step, value = spec
        if not (lo < hi and step > 0 and lo <= value <= hi):
            raise ValueError(
                f"{name} must be (min, max, step, value) with min < max, step > 0 and min <= value <= max, got {spec!r}"
            )
        cls = w.IntSlider if all(isinstance(v, int) for v in spec) else w.FloatSlider
        return cls(
            min=lo,
            max=hi,
            step=step,
            value=value,
            description=name,
            continuous_update=False,
            style={"description_width": "initial"},
            layout=w.Layout(width="420px"),
        )
    raise ValueError(f"{name} must be (min, max, step, value), a list of options, a bool or a widget, got {spec!r}")


class Panel(w.VBox):
    """Controls, a Run button, a status line and an output area for the experiment's figure."""

    def __init__(
        self,
        run: Callable[..., Awaitable[Any]],
        *,
        title: str | None = None,
        button: str = "Run experiment",
        **controls: Any,
    ):
        if not inspect.iscoroutinefunction(run):
            raise ValueError(f"run must be an async function (async def run(**params)), got {run!r}")
        if not controls:
            raise ValueError("controls must name at least one parameter, e.g. rate=(10, 200, 10, 50)")
        self._run = run
        self.controls = {name: control(name, spec) for name, spec in controls.items()}
        self.button = w.Button(description=button, button_style="primary", icon="play")
        self.status = w.HTML(value="")
        self.output = w.Output()
        self.result: Any = None
        self.task: asyncio.Task | None = None
        self.button.on_click(self._clicked)
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        super().__init__(children=[*header, *self.controls.values(), w.HBox([self.button, self.status]), self.output])

    @property
    def values(self) -> dict[str, Any]:
        """The parameters as currently set."""
        return {name: c.value for name, c in self.controls.items()}

    async def run(self, **overrides: Any) -> Any:
        """Run the experiment with the current values (``overrides`` first set controls), show and return
        its result. Errors are shown in the panel and raised."""
        for name, value in overrides.items():
            if name not in self.controls:
                raise ValueError(f"{name} is not a control of this panel; controls: {', '.join(self.controls)}")
            self.controls[name].value = value
        params = self.values
        self.button.disabled = True
        self.status.value = "<i>running…</i>"
        try:
            self.result = await self._run(**params)
        except Exception as exc:
            self.status.value = f"<span style='color:#D55E00'>failed: {type(exc).__name__}: {exc}</span>"
            self.output.outputs = ({"output_type": "stream", "name": "stderr", "text": traceback.format_exc()},)
            raise
        finally:
            self.button.disabled = False
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        self.status.value = f"done ({shown})"
        self.output.outputs = () if self.result is None else (_display_data(self.result),)
        return self.result

    def _clicked(self, _button: Any = None) -> None:
        """Button callback: schedule a run on the kernel's running loop, never block it."""
        if self.task is not None and not self.task.done():
            return
        try:
            loop = asyncio.get_running_loop()  # ipykernel handles widget messages on its event loop
        except RuntimeError:
            self.status.value = "no running event loop here: use <code>await panel.run()</code>"
            return
        self.task = loop.create_task(self._run_from_click())

    async def _run_from_click(self) -> None:
        try:
            await self.run()
        except Exception:  # already shown in the panel; a callback has nowhere else to report to
            pass


def _display_data(obj: Any) -> dict[str, Any]:
    """An output-area entry for ``obj``. Plotly figures display themselves (``_ipython_display_``), which
    would bypass an Output widget's capture, so their mime bundle is taken directly."""
    metadata: dict[str, Any]
    if hasattr(obj, "_repr_mimebundle_"):
        data, metadata = obj._repr_mimebundle_(), {}
        data.setdefault("text/plain", repr(obj)[:200])
    else:
        from IPython.core.interactiveshell import InteractiveShell

        formatter = InteractiveShell.instance().display_formatter
        if formatter is None:  # a shell without its display system: the plain text is all there is
            data, metadata = {"text/plain": repr(obj)}, {}
        else:
            data, metadata = formatter.format(obj)
    return {"output_type": "display_data", "data": data, "metadata": metadata}
