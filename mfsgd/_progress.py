"""Reporting training progress: a table on stdout, a tqdm bar, and the "mfsgd" logger."""
import contextlib
import logging
import sys

logger = logging.getLogger("mfsgd")


class EpochReporter:
    """Report each epoch's record: always to the "mfsgd" logger (INFO), and as a table line
    when `verbose`, and/or on a tqdm progress bar when `show_progress` (tqdm is an optional
    extra; without it the table is printed instead, with a note).  With both, the table lines
    are written through tqdm, above the bar."""

    def __init__(self, n_epochs, verbose, show_progress, with_valid, out=None):
        self.table = bool(verbose)
        if show_progress and not _have_tqdm():
            print("mfsgd: show_progress needs tqdm (pip install 'mfsgd[progress]'); "
                  "printing one line per epoch instead", file=sys.stderr)
            self.table = True
        if self.table:
            print(table_header(with_valid), file=out or sys.stdout, flush=True)
        self.console = _Console(out, n_epochs if show_progress else None, "mfsgd", "epoch")

    def epoch(self, record):
        """Report one epoch."""
        logger.info(table_row(record))
        bar = self.console.bar
        if bar is not None:
            postfix = {"train_rmse": f"{record['train_rmse']:.4f}"}
            if "valid_rmse" in record:
                postfix["valid_rmse"] = f"{record['valid_rmse']:.4f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
        if self.table:
            self.console.write(table_row(record))

    def close(self):
        """Finish the progress bar, if any."""
        self.console.close()


def table_header(with_valid):
    """Header line of the per-epoch table."""
    return ("epoch  train_rmse" + ("  valid_rmse" if with_valid else "")
            + "       objective  seconds")


def table_row(record):
    """One line of the per-epoch table for `record`."""
    valid = f"  {record['valid_rmse']:10.4f}" if "valid_rmse" in record else ""
    mark = "  *" if record.get("best") else ""
    return (f"{record['epoch']:5d}  {record['train_rmse']:10.4f}{valid}"
            f"  {record['objective']:14.6g}  {record['seconds']:7.3f}{mark}")


class TaskProgress:
    """Progress of many fits (cross-validation, searches): lines, and a tqdm bar over the fits.

    Every line goes to the "mfsgd" logger (INFO) and, with `verbose`, to stdout.  With
    `verbose` and tqdm installed, a bar on stderr counts finished fits, and lines go above it
    (see :class:`_Console`).  Call it from one thread only (the one that collects the
    results).  Use it as a context manager, which closes the bar.

    Parameters
    ----------
    title : str
        The bar's label.
    n_tasks : int
        Number of fits.
    verbose : int
        0: lines go to the logger only, no bar.
    """

    def __init__(self, title, n_tasks, verbose):
        self.verbose = verbose
        self.console = _Console(None, n_tasks if verbose > 0 else None, title, "fit")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def say(self, line):
        """Report one line (logger always; stdout with `verbose`)."""
        logger.info(line)
        if self.verbose > 0:
            self.console.write(line)

    def advance(self):
        """Count one finished fit on the bar."""
        if self.console.bar is not None:
            self.console.bar.update(1)

    def close(self):
        """Close the bar (leaving its final state on screen)."""
        self.console.close()


class _Console:
    """Lines on `out` (default: stdout at the time of writing) and, when `total` is given and
    tqdm is installed, a tqdm bar on stderr, without garbling each other: while the bar is
    shown, lines are written through ``tqdm.write`` (which clears the bar, writes and redraws
    it) and flushed, and so are the records of console logging handlers (tqdm's
    ``logging_redirect_tqdm``), which would otherwise be written over the bar."""

    def __init__(self, out, total, title, unit):
        self.out = out
        self.bar = None
        self._tqdm = None
        self._redirect = contextlib.ExitStack()
        if total is None or not _have_tqdm():
            return
        from tqdm.auto import tqdm
        self._tqdm = tqdm
        consoles = [log for log in (logging.root, logger) if _has_console_handler(log)]
        try:
            from tqdm.contrib.logging import logging_redirect_tqdm
        except ImportError:                           # tqdm < 4.38
            consoles = []
        if consoles:
            self._redirect.enter_context(logging_redirect_tqdm(loggers=consoles,
                                                               tqdm_class=tqdm))
        self.bar = tqdm(total=total, unit=unit, desc=title, leave=True)

    def write(self, line):
        """Write one line (above the bar, if one is shown)."""
        out = self.out or sys.stdout
        if self.bar is not None:
            self._tqdm.write(line, file=out)
            out.flush()
        else:
            print(line, file=out, flush=True)

    def close(self):
        """Close the bar and restore the logging handlers."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._redirect.close()


def _have_tqdm():
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:
        return False
    return True


def _has_console_handler(log):
    return any(isinstance(handler, logging.StreamHandler)
               and getattr(handler, "stream", None) in (sys.stdout, sys.stderr)
               for handler in log.handlers)
