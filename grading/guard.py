"""An audit hook in the graded kernel that notices when submitted code reads the hidden checks.

Why an audit hook (PEP 578): otter runs the hidden checks inside the submission's kernel, so they sit on
disk next to it while it runs. The hook sees every ``open`` (also ``os.open``, ``pathlib``, ``io``) and
every subprocess; a read of a protected path with no otter frame on the stack (otter's export cell
loads the checks; submitted code does not call otter) is written to a log the worker reads afterwards. Hooks cannot be removed once added.

What it does not stop: a submission that works around the hook on purpose (e.g. reads the log's path out
of its own notebook and rewrites it) is outside what this detects; grading reports what it saw.
"""

from __future__ import annotations

__all__ = ["cell_source"]

_TEMPLATE = r'''def __grading_guard(log_path, protected):
    import json, os, sys
    allowed = os.path.dirname(os.path.realpath(__import__("otter").__file__))
    roots = [os.path.realpath(p) for p in protected]
    roots += [os.path.realpath(os.path.join(os.getcwd(), "tests")), os.path.realpath(os.path.join(os.getcwd(), "..", "source"))]
    log = open(log_path, "a")

    def caller_is_otter():
        # otter's own reads (its export cell loads the checks) have otter on the stack; submitted code does not
        frame = sys._getframe(2)
        while frame is not None:
            if os.path.realpath(frame.f_code.co_filename).startswith(allowed):
                return True
            frame = frame.f_back
        return False

    def hit(path):
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return None
        return real if any(real == r or real.startswith(r + os.sep) for r in roots) else None

    def hook(event, args):
        if event == "open" and not isinstance(args[0], int):
            path = hit(args[0])
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"):
            text = " ".join(map(str, args[1] if event == "subprocess.Popen" else args[:2]))
            path = next((r for r in roots if r in text or "tests/" in text), None)
        else:
            return
        if path and not caller_is_otter():
            log.write(json.dumps({"event": event, "path": path}) + "\n")
            log.flush()

    sys.addaudithook(hook)


__grading_guard(__LOG__, __PROTECTED__)
del __grading_guard
'''


def cell_source(log_path: str, protected: list[str]) -> str:
    """The first cell of a graded notebook: installs the hook, logging to ``log_path``."""
    return _TEMPLATE.replace("__LOG__", repr(str(log_path))).replace("__PROTECTED__", repr([str(p) for p in protected]))
