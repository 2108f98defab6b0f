"""No bare polling loop in labkit or the chapters: a wait for a condition goes through
``labkit.lifecycle.wait_until``, which always has a deadline and says what it waited for. The few loops that
sleep for another reason are listed here, each with its reason."""

import ast

from code_sources import code_sources

#: (where, enclosing function) -> why its loop sleeps
ALLOWED = {
    ("labkit/lifecycle/waiting.py", "wait_until"): "the one polling wait, with its deadline",
    ("labkit/metrics.py", "sleep_until"): "sleeps to a point in time (spinning the last instant)",
    ("labkit/metrics.py", "_run"): "a sampler's periodic loop, cancelled by stop()",
    ("labkit/load.py", "caller"): "a closed-loop caller's think time, bounded by the run's deadline",
    ("labkit/services.py", "_call"): "retries with backoff, bounded by `retries`",
    ("labkit/checkout.py", "_until_reachable"): "a spine worker waits out an outage (the lesson), with backoff",
    ("labkit/classics/backoff.py", "writer"): "an optimistic writer's backoff (the lesson); each round one wins",
    ("labkit/blocking.py", "ticker"): "the ticker's periodic loop, cancelled by its caller (ticks_while)",
    ("labkit/classroom/learner.py", "_worker"): "a learner's service time per message, until it leaves",
    ("labkit/webhooks.py", "_work"): "a receiver's work time per event taken from its inbox, until stopped",
    ("labkit/webhooks.py", "poll_job"): "polling a status resource is the lesson; bounded by `timeout`",
}


def _name(func):
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def sleeping_loops(source):
    """(enclosing function, line) of every while loop whose body awaits a sleep."""
    tree = compile(source, "<source>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    found = []

    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.While) and any(
            isinstance(sub, ast.Await) and isinstance(sub.value, ast.Call) and _name(sub.value.func) == "sleep"
            for sub in ast.walk(node)
        ):
            found.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def test_the_check_finds_a_bare_polling_loop():
    source = (
        "while not done():\n    await asyncio.sleep(0.01)\n\nasync def f():\n    while x:\n        await sleep(1)\n"
    )
    assert sleeping_loops(source) == [("<module>", 1), ("f", 5)]
    assert sleeping_loops("await wait_until(done, timeout=5)\nwhile n < 3:\n    n += 1\n") == []


def test_every_wait_in_labkit_and_the_chapters_goes_through_wait_until():
    found = {
        (where, function): line for where, _, source in code_sources() for function, line in sleeping_loops(source)
    }
    bare = sorted(
        f"{where}: line {line} in {function}"
        for (where, function), line in found.items()
        if (where, function) not in ALLOWED
    )
    assert not bare, "wait with labkit.lifecycle.wait_until (a deadline, and what you wait for):\n" + "\n".join(bare)
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"allowed loops that no longer exist (remove them from ALLOWED): {stale}"
