"""labkit.tracing: spans in memory, keyed by correlation id, bounded."""

import pytest

from labkit import tracing


def test_spans_of_one_request_come_back_in_start_order():
    tracer = tracing.Tracer()
    outer = tracer.start("order", "server", "cid-1")
    inner = tracer.start("payment", "server", "cid-1", parent_id=outer.span_id, amount=10)
    other = tracer.start("order", "server")  # no correlation id: a new trace
    tracer.finish(inner, ok=False, status=500)
    tracer.finish(outer)
    tracer.finish(other)
    spans = tracer.trace("cid-1")
    assert [s.name for s in spans] == ["order", "payment"]
    assert spans[1].parent_id == spans[0].span_id and spans[1].attributes == {"amount": 10, "status": 500}
    assert not spans[1].ok and spans[1].duration >= 0
    assert other.correlation_id != "cid-1" and len(other.correlation_id) == 32
    assert tracer.correlation_ids() == ["cid-1", other.correlation_id]


def test_the_tracer_keeps_a_bounded_number_of_spans():
    tracer = tracing.Tracer(max_spans=10)
    for i in range(25):
        tracer.finish(tracer.start(f"s{i}", "client", "c"))
    assert len(tracer.spans) <= 10 and tracer.dropped == 25 - len(tracer.spans)
    assert tracer.spans[-1].name == "s24"
    tracer.clear()
    assert tracer.spans == [] and tracer.dropped == 0


def test_http_headers_round_trip():
    headers = tracing.http_headers("cid", "parent")
    assert headers == {"X-Correlation-ID": "cid", "X-Parent-Span-ID": "parent"}
    assert tracing.from_http(headers) == ("cid", "parent")
    assert tracing.from_http({}) == (None, None)
    assert tracing.http_headers("cid") == {"X-Correlation-ID": "cid"}


def test_open_span_has_no_duration():
    span = tracing.Tracer().start("x", "queue")
    assert span.duration is None and span.end is None


def test_invalid_arguments_name_the_argument():
    with pytest.raises(ValueError, match="kind"):
        tracing.Tracer().start("x", "rpc")
    with pytest.raises(ValueError, match="max_spans"):
        tracing.Tracer(max_spans=0)


def test_activate_makes_new_spans_continue_the_trace():
    tracer = tracing.Tracer()
    outer = tracer.start("order", "server", "cid-ctx")
    assert tracing.current() == (None, None)
    with tracing.activate(outer):
        assert tracing.current() == ("cid-ctx", outer.span_id)
        inner = tracer.start("publish", "publish")
        with tracing.activate(None):  # None keeps the active span
            assert tracing.current()[0] == "cid-ctx"
    assert (inner.correlation_id, inner.parent_id) == ("cid-ctx", outer.span_id)
    assert tracing.current() == (None, None)
    assert tracer.start("fresh", "client").correlation_id != "cid-ctx"


def test_open_spans_counts_started_and_not_finished_per_trace():
    tracer = tracing.Tracer()
    a = tracer.start("a", "server", "trace-1")
    b = tracer.start("b", "client", "trace-1")
    tracer.start("c", "client", "trace-2")
    assert tracer.open_spans("trace-1") == 2 and tracer.open_spans("trace-2") == 1
    assert tracer.trace("trace-1") == []  # kept only once finished
    tracer.finish(b)
    assert tracer.open_spans("trace-1") == 1
    tracer.finish(a)
    assert tracer.open_spans("trace-1") == 0 and len(tracer.trace("trace-1")) == 2
    assert tracer.open_spans("unknown") == 0
