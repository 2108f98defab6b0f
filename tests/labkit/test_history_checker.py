"""Property tests of the history checker: generated histories with known violations, each found, nothing else.

A generated run plans each message's fate (processed once, processed twice, deduplicated, lost after a
confirm, lost without confirms, refused at publish), each key's processing order and each saga's ending;
the expected violators follow from the plan alone, and the checker must name exactly those.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import history as H

FATES = ("ok", "dup", "dedup", "lost", "unconfirmed lost", "refused")
SAGA_FATES = (
    "committed",
    "compensated",
    "not compensated",
    "compensated twice",
    "committed and undone",
    "unfinished",
    "aborted early",
)


@st.composite
def delivery_runs(draw):
    n = draw(st.integers(1, 12))
    fates = draw(st.lists(st.sampled_from(FATES), min_size=n, max_size=n))
    keys = draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n))
    order = draw(st.permutations(range(n)))  # the order in which messages are (first) processed
    return fates, keys, list(order)


def build(fates, keys, order) -> H.History:
    """The history the plan describes: publishes in index order, processing in ``order``."""
    h = H.History()
    for i, (fate, key) in enumerate(zip(fates, keys)):
        m = f"m{i}"
        h.add("publish", "publisher", t=float(i), message_id=m, key=key)
        if fate == "refused":
            h.add("publish-nack", "publisher", t=i + 0.5, message_id=m, key=key)
        elif fate != "unconfirmed lost" and (fate != "ok" or i % 2):  # some "ok" sent without confirms
            h.add("confirm", "publisher", t=i + 0.5, message_id=m, key=key)
    for pos, i in enumerate(order):
        fate, key, m, t = fates[i], keys[i], f"m{i}", 100.0 + 10 * pos
        if fate in ("lost", "unconfirmed lost", "refused"):
            continue
        h.add("deliver", "c0", t=t, message_id=m, key=key, redelivered=False)
        h.add("effect", "c0", t=t + 1, message_id=m, key=key, name="charge", applied=True)
        if fate in ("dup", "dedup"):
            h.add("crash", "c0", t=t + 2, message_id=m)
            h.add("deliver", "c1", t=t + 3, message_id=m, key=key, redelivered=True)
            h.add("effect", "c1", t=t + 4, message_id=m, key=key, name="charge", applied=fate == "dup")
            h.add("ack", "c1", t=t + 5, message_id=m, key=key)
        else:
            h.add("ack", "c0", t=t + 2, message_id=m, key=key)
    return h


def expected(fates, keys, order):
    msgs = lambda *wanted: {f"m{i}" for i, f in enumerate(fates) if f in wanted}  # noqa: E731
    out_of_order = set()
    for key in set(keys):
        processed = [i for i in order if keys[i] == key and fates[i] in ("ok", "dup", "dedup")]
        published = [i for i in range(len(fates)) if keys[i] == key]
        if len(published) >= 2 and processed != sorted(processed):
            out_of_order.add(key)
    return {
        "at-most-once": msgs("dup"),
        "at-least-once": msgs("lost", "unconfirmed lost"),
        "effectively-once": msgs("dup", "lost", "unconfirmed lost"),
        "no confirmed message lost": msgs("lost"),
        "per-key order": out_of_order,
    }


def violators(prop: H.Property, h: H.History) -> set[str]:
    """Every subject the property flags (the checker reports one; here each subject is judged alone)."""
    return {s for s, events in prop.subjects(h).items() if (j := prop.problem(events)) and j[0]}


@settings(max_examples=150, deadline=None)
@given(delivery_runs())
def test_each_delivery_violation_is_found_and_nothing_else(run):
    h = build(*run)
    want = expected(*run)
    props = [
        H.AtMostOnce("charge"),
        H.AtLeastOnce("charge"),
        H.EffectivelyOnce("charge"),
        H.NoConfirmedLoss(),
        H.PerKeyOrder("charge"),
    ]
    report = H.check(h, *props)
    for prop, verdict in zip(props, report):
        assert violators(prop, h) == want[verdict.property], verdict.property
        assert verdict.violations == len(want[verdict.property]), str(verdict)
        assert verdict.held == (not want[verdict.property]), str(verdict)
        if not verdict.held:
            assert verdict.subject in want[verdict.property]
            shown = {e.message_id for e in verdict.counterexample}
            assert verdict.counterexample and (verdict.subject in shown or verdict.property == "per-key order")


@settings(max_examples=100, deadline=None)
@given(delivery_runs())
def test_counterexample_is_the_smallest_failing_subject(run):
    h = build(*run)
    prop = H.EffectivelyOnce("charge")
    verdict = H.check(h, prop)["effectively-once"]
    if verdict.held:
        return
    sizes = [len(events) for s, events in h.by("message_id").items() if s in expected(*run)["effectively-once"]]
    assert len(verdict.counterexample) == min(sizes)


@settings(max_examples=100, deadline=None)
@given(delivery_runs())
def test_per_key_order_counterexample_is_two_messages_out_of_order(run):
    order = run[2]
    verdict = H.check(build(*run), H.PerKeyOrder("charge"))["per-key order"]
    if verdict.held:
        return
    pair = {e.message_id for e in verdict.counterexample}
    assert len(pair) == 2 and {e.key for e in verdict.counterexample} == {verdict.subject}
    first, second = sorted(int(m[1:]) for m in pair)  # published first, processed second
    assert order.index(first) > order.index(second)


def build_saga(i: int, fate: str, h: H.History) -> None:
    s, t = f"saga-{i}", 10.0 * i
    steps = ("payment", "inventory")
    if fate == "aborted early":
        h.add("saga", "saga", t=t, key=s, phase="abort", step=None)
        return
    for k, step in enumerate(steps):
        h.add("saga", "saga", t=t + k, key=s, phase="do", step=step)
    if fate == "unfinished":
        return
    if fate in ("committed", "committed and undone"):
        h.add("saga", "saga", t=t + 3, key=s, phase="commit", step=None)
        if fate == "committed":
            return
    else:
        h.add("saga", "saga", t=t + 3, key=s, phase="abort", step=None)
    undo = {
        "compensated": steps,
        "not compensated": steps[:1],
        "compensated twice": steps + steps[1:],
        "committed and undone": steps[:1],
    }[fate]
    for k, step in enumerate(undo):
        h.add("saga", "refund" if step == "payment" else "release", t=t + 4 + k, key=s, phase="undo", step=step)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(SAGA_FATES), min_size=1, max_size=10))
def test_each_broken_saga_is_found_and_nothing_else(fates):
    h = H.History()
    for i, fate in enumerate(fates):
        build_saga(i, fate, h)
    bad = {f"saga-{i}" for i, f in enumerate(fates) if f not in ("committed", "compensated", "aborted early")}
    prop = H.SagasComplete()
    verdict = H.check(h, prop)["every saga committed or compensated"]
    assert violators(prop, h) == bad
    assert (verdict.checked, verdict.violations, verdict.held) == (len(fates), len(bad), not bad)
    if bad:
        assert verdict.subject in bad and all(e.key == verdict.subject for e in verdict.counterexample)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([202, 200, 503]), st.one_of(st.none(), st.floats(0, 3))), min_size=1, max_size=10
    )
)
def test_late_or_missing_processing_is_found_and_nothing_else(requests):
    limit = 1.0
    h = H.History()
    for i, (status, delay) in enumerate(requests):
        c, t = f"req-{i}", 10.0 * i
        h.add("request", "client", t=t, correlation_id=c, url="http://127.0.0.1:1/", target="upload")
        h.add(
            "response",
            "client",
            t=t + 0.01,
            correlation_id=c,
            status=status,
            url="http://127.0.0.1:1/",
            target="upload",
        )
        if delay is not None:
            h.add("effect", "worker", t=t + 0.01 + delay, correlation_id=c, name="processed", applied=True)
    accepted = {f"req-{i}" for i, (status, _) in enumerate(requests) if status < 300}
    late = {f"req-{i}" for i, (status, d) in enumerate(requests) if status < 300 and (d is None or d > limit)}
    prop = H.ProcessedWithin(limit, effect="processed")
    verdict = H.check(h, prop)[prop.name]
    assert violators(prop, h) == late
    assert (verdict.checked, verdict.violations) == (len(accepted), len(late))


@settings(max_examples=8, deadline=None)
@given(delivery_runs())
def test_saved_history_rechecks_to_the_same_verdicts(tmp_path_factory, run):
    h = build(*run)
    props = [H.EffectivelyOnce("charge"), H.NoConfirmedLoss(), H.PerKeyOrder("charge")]
    report = H.check(h, *props)
    where = h.save(str(tmp_path_factory.mktemp("bundle")), report)
    loaded, verdicts = H.load(where)
    assert [v.to_dict() for v in H.check(loaded, *props)] == [v.to_dict() for v in verdicts] == report.to_dict()


def test_bundle_holds_history_verdicts_and_an_offline_diagram(tmp_path):
    h = build(["dup", "ok"], ["a", "a"], [0, 1])
    report = H.check(h, H.EffectivelyOnce("charge"))
    h.save(str(tmp_path), report)
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == len(h)
    assert json.loads((tmp_path / "verdicts.json").read_text())[0]["held"] is False
    page = (tmp_path / "diagram.html").read_text()
    assert "plotly.min.js" in page and "Text alternative" in page and (tmp_path / "plotly.min.js").is_file()


def test_diagram_of_200_events_is_a_few_traces_with_a_text_alternative():
    n = 40
    h = build(["dup" if i % 7 == 0 else "ok" for i in range(n)], ["a"] * n, list(range(n)))
    assert len(h) >= 200
    drawn = H.diagram(h)
    assert len(drawn.figure.data) <= 12  # one trace per kind of arrow or mark, not one per event
    names = {t.name for t in drawn.figure.data}
    assert {"crash", "redelivered", "duplicate effect", "delivery", "redelivery"} <= names
    assert len(drawn.text.splitlines()) == len(h) + 3
    assert list(drawn.figure.layout.yaxis.ticktext) == ["publisher", "broker", "c0", "c1"]


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="kind must be one of"):
        H.Event(0.0, "teleport", "p")
    with pytest.raises(ValueError, match="properties must name"):
        H.check(H.History())
    with pytest.raises(ValueError, match="name must be one of"):
        H.guarantee("exactly-once")
    with pytest.raises(ValueError, match="seconds must be"):
        H.ProcessedWithin(0)
    with pytest.raises(ValueError, match="events must not be empty"):
        H.diagram([])
    with pytest.raises(ValueError, match="line 1 of the history"):
        H.History.from_jsonl('{"t": 0, "kind": "nope", "process": "p"}\n')


def test_recorder_is_off_until_started_and_restores_on_exit():
    from labkit.history import recorder

    assert recorder.active is None
    H.effect("charge", message_id="m")  # off: nothing to record into, nothing raised
    with H.record() as h:
        H.effect("charge", message_id="m1")
        H.saga("do", "s1", "payment")
        with H.record() as inner:
            H.effect("charge", message_id="m2")
        H.effect("charge", message_id="m3")
    assert recorder.active is None
    assert [e.message_id for e in h.of("effect")] == ["m1", "m3"] and len(inner) == 1
    assert h.of("saga")[0].attrs == {"phase": "do", "step": "payment"}


def test_a_stated_guarantee_is_judged_on_runs_without_naming_the_answer():
    from labkit.history.judge import judge_guarantee

    dup = build(["dup", "ok"], ["a", "a"], [0, 1])
    good = build(["dedup", "ok"], ["a", "a"], [0, 1])
    lost = build(["lost", "ok"], ["a", "a"], [0, 1])
    runs = dict(must_hold={"good run": good}, must_fail={"double charge": dup, "lost payment": lost}, effect="charge")
    assert judge_guarantee(..., **runs).status == "unanswered"
    assert judge_guarantee("effectively-once", **runs).ok
    assert judge_guarantee(H.EffectivelyOnce("charge"), **runs).ok
    weak = judge_guarantee("at-most-once", **runs)
    assert not weak.ok and "lost payment" in weak.message and "effectively" not in weak.message
    assert "double charge" in judge_guarantee("at-least-once", **runs).message
    assert "count the effect" in judge_guarantee(H.EffectivelyOnce(), **runs).message
    assert (
        "Too strict"
        in judge_guarantee(
            [H.EffectivelyOnce("charge"), H.NoConfirmedLoss(), H.PerKeyOrder("charge")],
            must_hold={"late run": build(["ok", "ok"], ["a", "a"], [1, 0])},
            must_fail={},
        ).message
    )
    assert "must be one of" in judge_guarantee("exactly-once", **runs).message


def test_a_request_is_accepted_by_its_own_answer_not_by_the_calls_made_for_it():
    h = H.History()
    h.add("request", "client", t=0.0, correlation_id="img", target="upload")
    h.add("request", "upload", t=0.1, correlation_id="img", target="processor")
    h.add("response", "upload", t=0.2, correlation_id="img", target="processor", status=200)
    h.add("response", "client", t=0.3, correlation_id="img", target="upload", status=502)
    verdict = H.check(h, H.AtLeastOnce("notified", by="correlation_id"), H.ProcessedWithin(1, "notified"))
    assert [v.checked for v in verdict] == [0, 0]  # refused at the door: nobody owes it a notification
    h.add("response", "client", t=0.4, correlation_id="img", target="upload", status=202)
    assert [v.violations for v in H.check(h, H.AtLeastOnce("notified", by="correlation_id"))] == [1]
