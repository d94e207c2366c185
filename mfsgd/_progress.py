"""Reporting training progress: a table on stdout, a tqdm bar, and the "mfsgd" logger."""
import logging
import sys

logger = logging.getLogger("mfsgd")


class EpochReporter:
    """Report each epoch's record: always to the "mfsgd" logger (INFO), and as a table line
    when `verbose`, or on a tqdm progress bar when `show_progress` (tqdm is an optional extra;
    without it the table is printed instead, with a note)."""

    def __init__(self, n_epochs, verbose, show_progress, with_valid, out=None):
        self.out = out or sys.stdout
        self.bar = None
        self.table = bool(verbose)
        if show_progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                print("mfsgd: show_progress needs tqdm (pip install 'mfsgd[progress]'); "
                      "printing one line per epoch instead", file=sys.stderr)
                self.table = True
            else:
                self.bar = tqdm(total=n_epochs, unit="epoch", desc="mfsgd", leave=True)
        if self.table:
            print(table_header(with_valid), file=self.out, flush=True)

    def epoch(self, record):
        """Report one epoch."""
        logger.info(table_row(record))
        if self.bar is not None:
            postfix = {"train_rmse": f"{record['train_rmse']:.4f}"}
            if "valid_rmse" in record:
                postfix["valid_rmse"] = f"{record['valid_rmse']:.4f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
        if self.table:
            print(table_row(record), file=self.out, flush=True)

    def close(self):
        """Finish the progress bar, if any."""
        if self.bar is not None:
            self.bar.close()


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
