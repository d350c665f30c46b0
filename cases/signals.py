"""SIGINT and SIGTERM end a run the way an error does: staged outputs are removed on the way out,
finished steps stay, and the command prints one line and exits with 128 + the signal's number."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading


class Interrupted(KeyboardInterrupt):
    """A signal that stops the run; a KeyboardInterrupt, so that code which cleans up after
    Ctrl-C cleans up after SIGTERM too."""

    def __init__(self, number: int = signal.SIGINT):
        super().__init__(signal.Signals(number).name)
        self.number = int(number)

    @property
    def exit_code(self) -> int:
        return 128 + self.number


def _raise(number, frame):
    if _in_finalizer(frame):
        # raised here, the exception would be printed and dropped ("Exception ignored in ..."), and
        # the run would go on: ask again once the finalizer has returned
        threading.Timer(0.05, os.kill, (os.getpid(), number)).start()
        return
    raise Interrupted(number)


def _in_finalizer(frame) -> bool:
    """The signal arrived inside a `__del__` or a `weakref.finalize` callback (run by the garbage
    collector at any point), where an exception cannot leave."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or (code.co_name == "__call__" and code.co_filename.endswith("weakref.py")):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def interruptible():
    """Turn SIGINT and SIGTERM into `Interrupted` while the block runs (main thread only: Python
    delivers signals there; elsewhere the handlers cannot be set and are left as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _raise) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stopped(err: KeyboardInterrupt) -> Interrupted:
    """The interrupt that stopped this process (one raised before our handler was set, or by
    Python's own, is SIGINT), after the JIT compiles it cut short are unclaimed (`solvers.jit`)."""
    if "dolfinx" in sys.modules:
        import psutil

        from solvers.jit import remove_unfinished

        remove_unfinished(psutil.Process().create_time())
    return err if isinstance(err, Interrupted) else Interrupted(signal.SIGINT)
