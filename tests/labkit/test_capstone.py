"""The capstone checker tells a design that survives faults from one that does not, for the right reasons."""

import pytest

from labkit.capstone import check_design, naive_design, reference_design


async def test_reference_design_holds_every_property(lab):
    report = await check_design(lab, reference_design, seed=1)
    assert report.passed, str(report)
    assert report.notified == len(report.uploads) == report.processed


async def test_naive_design_fails_acceptance_and_latency_but_loses_nothing_it_accepted(lab):
    report = await check_design(lab, naive_design, seed=1)
    held = {p.name: p.held for p in report.properties}
    assert not report.passed
    assert held == {
        "every upload accepted during the faults": False,
        "upload p99 below the processor's service time": False,
        "every accepted image processed and notified after recovery": True,
        "no duplicate notifications": True,
    }, str(report)
    assert "❌" in report._repr_html_() and "FAIL" in str(report)


async def test_a_design_that_forgets_what_it_notified_is_caught(lab):
    async def notify_twice(workflow):
        async def accept(body):
            return {}

        return await lab.service(
            "upload-twice",
            handler=accept,
            downstream=[workflow.processor_url, workflow.notifier_url, workflow.notifier_url],
            timeout=2.0,
        )

    report = await check_design(lab, notify_twice, seed=1)
    assert [p.held for p in report.properties][-1] is False, str(report)


@pytest.mark.parametrize(
    "argument, value", [("rate", 0), ("spike_factor", -1), ("processor_time", 0), ("drain_timeout", 0), ("seed", -1)]
)
async def test_arguments_are_validated(lab, argument, value):
    with pytest.raises(ValueError, match=argument):
        await check_design(lab, reference_design, **{argument: value})
