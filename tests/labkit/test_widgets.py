"""labkit.widgets: panels build without an event loop and run experiments on the running one."""

import asyncio
import textwrap

import ipywidgets as w
import plotly.graph_objects as go
import pytest

from labkit import plots
from labkit.widgets import Panel, control


async def _experiment(rate, mode, slow):
    await asyncio.sleep(0.01)
    fig = plots.figure(f"{mode} {slow}", "x (s)", "y (1/s)")
    return fig.add_trace(go.Scatter(x=[0, 1], y=[0, rate]))


def test_panel_builds_without_a_running_loop_and_picks_widget_types():
    panel = Panel(_experiment, title="Try it", rate=(10, 200, 10, 50), mode=["sync", "async"], slow=False)
    assert isinstance(panel.controls["rate"], w.IntSlider)
    assert isinstance(panel.controls["mode"], w.Dropdown) and isinstance(panel.controls["slow"], w.Checkbox)
    assert panel.values == {"rate": 50, "mode": "sync", "slow": False}
    assert isinstance(control("t", (0.01, 0.5, 0.01, 0.05)), w.FloatSlider)
    panel._clicked()  # no loop: explains instead of failing
    assert "await panel.run()" in panel.status.value and panel.task is None


async def test_run_shows_the_figure_and_overrides_set_controls():
    panel = Panel(_experiment, rate=(10, 200, 10, 50), mode=["sync", "async"], slow=False)
    fig = await panel.run(rate=120, mode="async")
    assert fig.data[0].y[1] == 120 and panel.values["rate"] == 120
    assert len(panel.output.outputs) == 1
    assert "application/vnd.plotly.v1+json" in panel.output.outputs[0]["data"]
    assert panel.status.value.startswith("done") and "rate=120" in panel.status.value
    await panel.run()
    assert len(panel.output.outputs) == 1  # replaced, not appended


async def test_click_schedules_on_the_running_loop_and_disables_the_button():
    panel = Panel(_experiment, rate=(10, 200, 10, 50), mode=["sync"], slow=True)
    panel.button.click()
    assert panel.task is not None and not panel.task.done()
    await asyncio.sleep(0)
    assert panel.button.disabled
    panel.button.click()  # a second click while running is ignored
    await panel.task
    assert not panel.button.disabled and panel.result is not None


async def test_a_failing_experiment_is_shown_in_the_panel():
    async def broken(rate):
        raise RuntimeError("broker unreachable")

    panel = Panel(broken, rate=(1, 10, 1, 5))
    with pytest.raises(RuntimeError):
        await panel.run()
    assert "broker unreachable" in panel.status.value and not panel.button.disabled
    panel.button.click()
    await panel.task  # the click path swallows the error after showing it
    assert "broker unreachable" in panel.output.outputs[-1]["text"]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"rate": (10, 1, 1, 5)}, "rate"),
        ({"rate": (1, 10, 0, 5)}, "rate"),
        ({"rate": (1, 10, 1, 50)}, "rate"),
        ({"rate": "fast"}, "rate"),
        ({"mode": []}, "mode"),
        ({}, "controls"),
    ],
)
def test_invalid_controls_name_the_parameter(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        Panel(_experiment, **kwargs)


def test_run_must_be_async():
    with pytest.raises(ValueError, match="run"):
        Panel(lambda rate: None, rate=(1, 10, 1, 5))


async def test_unknown_override_is_rejected():
    panel = Panel(_experiment, rate=(10, 200, 10, 50), mode=["sync"], slow=False)
    with pytest.raises(ValueError, match="ratee"):
        await panel.run(ratee=3)


def test_a_click_in_a_real_kernel_runs_the_experiment():
    """The JupyterLab path: the front end sends a comm message; the kernel must run the coroutine."""
    jupyter_client = pytest.importorskip("jupyter_client")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:

        def execute(code):
            out = []
            reply = kc.execute_interactive(
                textwrap.dedent(code),
                timeout=60,
                output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
            )
            assert reply["content"]["status"] == "ok", reply["content"]
            return "".join(out)

        comm_id = execute("""
            import asyncio
            from labkit.widgets import Panel
            runs = []
            async def experiment(rate):
                await asyncio.sleep(0.01)
                runs.append(rate)
            panel = Panel(experiment, rate=(1, 10, 1, 7))
            print(panel.button.comm.comm_id)
        """).strip()
        # what JupyterLab sends when the button is clicked
        kc.session.send(
            kc.shell_channel.socket,
            kc.session.msg(
                "comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
            ),
        )
        assert execute("""
            for _ in range(200):
                if runs:
                    break
                await asyncio.sleep(0.05)
            print(runs, panel.status.value)
        """).startswith("[7] done")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


async def test_a_non_figure_result_is_shown_as_text():
    async def table(n):
        return {"n": n}

    panel = Panel(table, n=(1, 5, 1, 2))
    await panel.run()
    assert panel.output.outputs[0]["data"]["text/plain"] == "{'n': 2}"
