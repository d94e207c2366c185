"""Guards around training calls: one at a time per object, and Ctrl-C only where it is safe.

:func:`exclusive_training` refuses a second fit of an estimator object while one runs (two
threads training one model would interleave their epochs).

Python raises KeyboardInterrupt at whatever bytecode the main thread runs when SIGINT arrives,
so an interrupt could land between two updates of the model's state (the factors of an epoch
kept, its ``history_`` entry not).  While :func:`deferred_interrupts` is active in the main
thread, SIGINT is only recorded; the caller delivers it with the returned ``check`` at points
of its choosing (then the SIGINT handler that was installed before runs: by default it raises
KeyboardInterrupt), and leaving the outermost context delivers one that no check took.
Nested contexts share the outermost one's record.  In other threads, where Python never
delivers signals, ``check`` raises KeyboardInterrupt once the thread's :func:`stop_event`
is set (cross-validation sets it for its worker threads when it is interrupted, so that the
fits in them stop too); when SIGINT is ignored or not handled by Python, nothing changes.
"""
import signal
import threading
from contextlib import contextmanager


class _Deferral:
    """The recorded signal of the active (outermost) deferral in the main thread."""

    depth = 0
    previous = None
    received = None

    @classmethod
    def record(cls, signum, frame):
        cls.received = (signum, frame)

    @classmethod
    def deliver(cls):
        if cls.received is not None:
            signum, frame = cls.received
            cls.received = None
            cls.previous(signum, frame)


_thread_state = threading.local()


def _no_check():
    return None


def _check_stop_event():
    event = getattr(_thread_state, "stop", None)
    if event is not None and event.is_set():
        raise KeyboardInterrupt("mfsgd: training stopped because its caller was interrupted")


@contextmanager
def stop_event(event):
    """Within the block, training in this thread stops at its next check once `event` is set.

    Parameters
    ----------
    event : threading.Event
        Set by another thread (e.g. on KeyboardInterrupt) to stop this thread's training; its
        ``fit`` then raises KeyboardInterrupt, leaving the model as an interrupt would.
    """
    previous = getattr(_thread_state, "stop", None)
    _thread_state.stop = event
    try:
        yield
    finally:
        _thread_state.stop = previous


@contextmanager
def deferred_interrupts():
    """Hold back SIGINT inside the block; yield ``check()``, which delivers a held-back one.

    Yields
    ------
    check : callable
        Runs the previous SIGINT handler (normally raising KeyboardInterrupt) if SIGINT
        arrived since the last check; does nothing otherwise.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _check_stop_event
        return
    if _Deferral.depth == 0:
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):              # SIG_IGN, SIG_DFL or a handler set from C
            yield _no_check
            return
        _Deferral.previous, _Deferral.received = previous, None
        signal.signal(signal.SIGINT, _Deferral.record)
    _Deferral.depth += 1
    completed = False
    try:
        yield _Deferral.deliver
        completed = True
    finally:
        _Deferral.depth -= 1
        if _Deferral.depth == 0:
            previous, received = _Deferral.previous, _Deferral.received
            _Deferral.previous = _Deferral.received = None
            signal.signal(signal.SIGINT, previous)
            if completed and received is not None:
                previous(*received)


_busy_lock = threading.Lock()
_busy = {}                       # id(estimator) -> name of the thread training it


@contextmanager
def exclusive_training(estimator, method):
    """Run the block as the only training call on `estimator`, else raise RuntimeError.

    Parameters
    ----------
    estimator : object
        The estimator being trained (held by identity for the duration of the block).
    method : str
        The method called ("fit", "partial_fit"), for the message.

    Raises
    ------
    RuntimeError
        When another fit or partial_fit of the same object is running, in another thread or
        (from a callback) in this one.
    """
    name = type(estimator).__name__
    key = id(estimator)
    registered = False
    try:
        with _busy_lock:
            owner = _busy.get(key)
            if owner is not None:
                raise RuntimeError(
                    f"{name}.{method}: this {name} object is already training (in thread "
                    f"{owner!r}); train one object per thread, e.g. mfsgd.clone(model)")
            _busy[key] = threading.current_thread().name
            registered = True
        yield
    finally:
        if registered:
            with _busy_lock:
                _busy.pop(key, None)
