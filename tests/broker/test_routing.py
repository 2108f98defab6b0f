"""Routing and ordering rules checked exhaustively against simple reference models.

Why: topic matching (``*``/``#``, including "lazy.#" matching "lazy") and "requeued messages return
to their original position" are easy to get subtly wrong, and the conformance suite can only try a
handful of cases through the wire. Hypothesis tries hundreds here in well under a second.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.broker.exchange import headers_match, topic_matches
from labkit.broker.message import Message
from labkit.broker.ready import PriorityReady, Ready

words = st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=5)
patterns = st.lists(st.sampled_from(["a", "b", "*", "#"]), min_size=1, max_size=5)


def reference_topic(pattern: list[str], key: list[str]) -> bool:
    """RabbitMQ's rule as a regex over the word list: '*' one word, '#' any number of words."""
    regex = "".join({"*": r"[^.]+\.", "#": r"(?:[^.]+\.)*"}.get(w, re.escape(w) + r"\.") for w in pattern)
    return re.fullmatch(regex, "".join(w + "." for w in key)) is not None


@settings(max_examples=200, deadline=None)
@given(patterns, words)
def test_topic_matches_the_reference(pattern, key):
    assert topic_matches(tuple(pattern), tuple(key)) == reference_topic(pattern, key)


def test_topic_examples_from_the_rabbitmq_tutorial():
    def match(p: str, k: str) -> bool:
        return topic_matches(tuple(p.split(".")), tuple(k.split(".")))

    assert match("*.orange.*", "quick.orange.rabbit")
    assert match("lazy.#", "lazy") and match("lazy.#", "lazy.pink.rabbit")
    assert not match("*.*.rabbit", "quick.orange.male.rabbit")
    assert match("#", "anything.at.all") and match("#.rabbit", "rabbit")


def test_headers_match_all_any_and_ignores_x_arguments():
    headers = {"format": "pdf", "type": "report"}
    assert headers_match({"x-match": "all", "format": "pdf", "type": "report"}, headers)
    assert not headers_match({"x-match": "all", "format": "pdf", "type": "log"}, headers)
    assert headers_match({"x-match": "any", "format": "zip", "type": "report"}, headers)
    assert not headers_match({"x-match": "any", "format": "zip"}, headers)
    assert headers_match({"format": "pdf", "x-custom": "ignored"}, headers)  # all is the default


def _messages(n: int) -> list[Message]:
    out = []
    for i in range(n):
        msg = Message("", "q", b"", b"%d" % i)
        msg.seq = i + 1
        out.append(msg)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(st.integers(1, 4), min_size=1, max_size=6),
        )
    )
)
def test_requeued_messages_return_to_their_original_positions(case):
    """Take messages off the head, requeue any subset in batches of any order: the queue is back
    in publish order."""
    n, taken_mask, batch_sizes = case
    ready = Ready()
    msgs = _messages(n)
    for msg in msgs:
        ready.append(msg)
    taken = [ready.popleft() for _ in range(sum(taken_mask))]
    back = list(reversed(taken))
    while back:
        size = batch_sizes[len(back) % len(batch_sizes)]
        batch, back = sorted(back[:size], key=lambda m: m.seq), back[size:]
        ready.requeue(batch)
    assert [m.seq for m in ready] == [m.seq for m in msgs]


def test_priority_ready_serves_highest_priority_first_and_requeues_in_place():
    ready = PriorityReady(max_priority=2)
    msgs = _messages(4)
    prios = iter([0, 2, 1, 2])
    for msg in msgs:
        msg._props = type("P", (), {"priority": next(prios)})()
        msg.header = b"\x00" * 12 + (2048).to_bytes(2, "big")  # the priority property flag is set
        ready.append(msg)
    order = [ready.popleft() for _ in range(4)]
    assert [m.seq for m in order] == [2, 4, 3, 1]
    ready.requeue(sorted(order[:2], key=lambda m: m.seq))
    assert [m.seq for m in ready] == [2, 4]


@pytest.mark.timeout(20)
def test_topic_matching_terminates_on_pathological_patterns():
    """Backtracking would take ~2^40 steps here; one binding must not be able to stall the broker.
    (The DP does ~5,000; the timeout only catches a hang, it is not a speed target.)"""
    assert not topic_matches(tuple(["#"] * 40 + ["x"]), tuple(["a"] * 120))
    assert topic_matches(tuple(["#"] * 40 + ["a"]), tuple(["a"] * 120))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.integers(0, 3), st.binary(max_size=300)), min_size=1, max_size=8),
    st.lists(st.integers(1, 400), min_size=1, max_size=20),
)
def test_frame_reader_reassembles_frames_however_tcp_splits_them(frames_in, cuts):
    """The broker sees TCP chunks, not frames: any split of the byte stream gives the same frames."""
    import struct

    from labkit.broker.frames import FrameReader

    stream = b"".join(struct.pack(">BHI", t, ch, len(p)) + p + b"\xce" for t, ch, p in frames_in)
    reader, out, pos, i = FrameReader(frame_max=0), [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += reader.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    assert out == [(t, ch, p) for t, ch, p in frames_in]
