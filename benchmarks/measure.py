"""One benchmark configuration: load a rating set, split it 90/10, fit, measure.

This module imports only the standard library, numpy and mfsgd, so that it can also run as a
script (the suite runs every configuration in a fresh subprocess, which makes the memory
numbers belong to that one fit):

    python benchmarks/measure.py '{"data": "r.npz", "n_factors": 32, "n_threads": 1, "n_epochs": 3}'

prints one JSON object (the result of `measure_fit`) on its last line of stdout.
"""
import gc
import json
import os
import resource
import sys
import time

import numpy as np

TEST_FRACTION = 0.1
SPLIT_SEED = 0


def _status_kib():
    """VmRSS and VmHWM of this process in KiB from /proc/self/status ({} off Linux)."""
    values = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _busy_cpu_seconds():
    """CPU seconds all cores spent busy since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle                              # up to steal, without guest
    return busy / os.sysconf("SC_CLK_TCK")


MIN_LOAD_SECONDS = 0.05


def other_load(busy, own, wall):
    """Cores used by other processes: machine busy seconds minus our own, over the wall time,
    clipped to [0, cores]; None when `wall` is too short for /proc/stat's 10 ms ticks."""
    if wall < MIN_LOAD_SECONDS:
        return None
    return min(max(0.0, busy - own) / wall, float(os.cpu_count() or 1))


def _own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def training_layout(model):
    """The layout a fitted model trains on.  Builds from before the fitted state moved into
    ``fit_state_`` (measured with ``--baseline``) kept it in the model itself."""
    state = getattr(model, "fit_state_", None)
    return state.layout if state is not None else model._layout


def layout_blocks(model):
    """The number of row/column blocks a fitted model trained with."""
    return int(training_layout(model).n_blocks)


def kernel_module():
    """mfsgd's compiled SGD module (``mfsgd._kernels._sgd``; ``mfsgd._sgd`` in builds from
    before the kernels moved into ``mfsgd/_kernels/``, which ``--baseline`` may measure)."""
    try:
        from mfsgd._kernels import _sgd
    except ImportError:
        from mfsgd import _sgd
    return _sgd


def kernel_isa(n_factors=None):
    """The instruction set mfsgd's kernel uses (for `n_factors` when it chooses per k)."""
    _sgd = kernel_module()
    if n_factors is not None:
        try:
            return _sgd.current_isa(n_factors)
        except TypeError:  # a kernel with one ISA for every k
            pass
    return _sgd.current_isa()


def load_split(path, test_fraction=TEST_FRACTION, seed=SPLIT_SEED):
    """(train, test) index triplets from an .npz with arrays u, i, r, split at random."""
    with np.load(path) as data:
        users, items, ratings = data["u"], data["i"], data["r"]
    order = np.random.default_rng(seed).permutation(len(ratings))
    n_test = int(round(len(ratings) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return ((users[train], items[train], ratings[train]),
            (users[test], items[test], ratings[test]))


def median_epoch_seconds(history):
    """Median of history_[i]["seconds"] over all epochs."""
    return float(np.median([record["seconds"] for record in history]))


INPUTS = ("tuple", "scipy", "ratings")


def as_input(triplets, kind):
    """The training ratings as the caller would hold them: the (users, items, ratings) tuple
    itself, a scipy.sparse CSR matrix, or an mfsgd.Ratings."""
    import mfsgd
    users, items, ratings = triplets
    if kind == "tuple":
        return triplets
    if kind == "scipy":
        import scipy.sparse as sp
        shape = (int(users.max()) + 1, int(items.max()) + 1)
        matrix = sp.csr_matrix((ratings.astype(np.float32), (users, items)), shape=shape)
        matrix.sum_duplicates()
        return matrix
    if kind == "ratings":
        return mfsgd.Ratings.from_arrays(users, items, ratings)
    raise ValueError(f"input must be one of {INPUTS}, got {kind!r}")


def input_nbytes(X):
    """Bytes of the arrays the caller holds for `X` (tuple, scipy matrix or Ratings)."""
    if isinstance(X, tuple):
        return int(sum(np.asarray(a).nbytes for a in X))
    arrays = [X.indptr, X.indices, X.data]
    arrays += [getattr(X, name) for name in ("user_ids", "item_ids", "timestamps")
               if getattr(X, name, None) is not None]
    return int(sum(a.nbytes for a in arrays))


class ImbalanceRecorder:
    """A fit callback that reads each epoch's per-block seconds from the model's layout.

    For every sub-epoch it records the slowest block's seconds over the mean of its blocks
    ("block imbalance") and, under the kernel's static assignment of the schedule's columns
    to threads (column t to thread t mod n_threads), the busiest thread's seconds over the
    mean of the threads ("thread imbalance"; equal to the block imbalance when every thread
    runs one block).  Where the kernel also reports each block's thread CPU seconds, it
    records the block imbalance in CPU seconds and each epoch's critical path: the sum over
    sub-epochs of the busiest thread's CPU seconds, which is the epoch's time on an otherwise
    idle machine less the thread start-up and barrier costs (time other processes take from
    a thread does not count; cache and memory contention between the threads does, where
    they ran at the same time).
    """

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.block, self.thread, self.cpu_block, self.critical = [], [], [], []

    def __call__(self, record, model):
        layout = training_layout(model)
        seconds = getattr(layout, "block_seconds", None)  # None in versions without them
        cpu = getattr(layout, "block_cpu_seconds", None)
        schedule = getattr(layout, "schedule", None)
        if seconds is None or schedule is None:
            return False
        threads = self._threads_per_sub_epoch(model, schedule)
        critical = 0.0
        for row, n in zip(schedule, threads):
            times = seconds[row]
            if times.mean() > 0:
                self.block.append(float(times.max() / times.mean()))
                per_thread = [times[j::n].sum() for j in range(n)]
                self.thread.append(float(max(per_thread) / np.mean(per_thread)))
            if cpu is not None:
                work = cpu[row]
                if work.mean() > 0:
                    self.cpu_block.append(float(work.max() / work.mean()))
                critical += max(work[j::n].sum() for j in range(n))
        if cpu is not None:
            self.critical.append(critical)
        return False

    def _threads_per_sub_epoch(self, model, schedule):
        """Threads the kernel gave each sub-epoch (fewer than asked for small ones)."""
        width = schedule.shape[1]
        try:
            _sgd = kernel_module()
            layout = training_layout(model)
            return [max(1, int(t)) for t in _sgd.sub_epoch_threads(
                layout.block_ptr, layout.run_ptr, schedule,
                _sgd.padded_width(model.user_factors_.shape[1], model.user_factors_.itemsize),
                self.n_threads)]
        except (ImportError, AttributeError):
            return [max(1, min(self.n_threads, width))] * len(schedule)

    def summary(self):
        """Mean and worst block and thread imbalance over all sub-epochs (None if none), the
        mean and worst block imbalance in CPU seconds and the median critical path."""
        out = {"block_imbalance_mean": None, "block_imbalance_max": None,
               "thread_imbalance_mean": None, "thread_imbalance_max": None,
               "cpu_block_imbalance_mean": None, "cpu_block_imbalance_max": None,
               "cpu_critical_seconds": None}
        if self.block:
            out.update(block_imbalance_mean=float(np.mean(self.block)),
                       block_imbalance_max=float(np.max(self.block)),
                       thread_imbalance_mean=float(np.mean(self.thread)),
                       thread_imbalance_max=float(np.max(self.thread)))
        if self.cpu_block:
            out.update(cpu_block_imbalance_mean=float(np.mean(self.cpu_block)),
                       cpu_block_imbalance_max=float(np.max(self.cpu_block)))
        if self.critical:
            out["cpu_critical_seconds"] = float(np.median(self.critical))
        return out


class EpochCpuRecorder:
    """A fit callback noting this process's CPU seconds between consecutive epochs' ends
    (the kernel, and the validation score when there is one, on every thread of the fit):
    unlike wall time, barely changed by other processes on the machine."""

    def __init__(self):
        self.marks = []

    def __call__(self, record, model):
        self.marks.append(time.process_time())
        return False

    def median_seconds(self):
        """Median CPU seconds of an epoch, from the second epoch on (None under two)."""
        if len(self.marks) < 2:
            return None
        return float(np.median(np.diff(self.marks)))


def measure_fit(data, n_factors, n_threads, n_epochs, random_state=0, validate=True,
                input="tuple", model="mf", **params):
    """Fit MatrixFactorization (or SVDpp) on the 90 % split of `data`; return the measurements.

    Parameters
    ----------
    data : str
        An .npz file with integer arrays u, i and float array r (as written by the
        yardstick's csrfile.py).
    n_factors, n_threads, n_epochs, random_state :
        Passed to MatrixFactorization; other keyword arguments too.
    validate : bool
        Record the test RMSE after every epoch (outside the timed kernel call) for the
        RMSE-versus-time curve.
    input : {"tuple", "scipy", "ratings"}
        How the training ratings are passed to fit (see :func:`as_input`); they are converted
        before the memory baseline, so fit's own conversions count and the caller's do not.
    model : {"mf", "svdpp"}
        The estimator: MatrixFactorization or SVDpp (with its default implicit parameters).

    Returns
    -------
    dict with n_ratings, n_train, n_test, epoch_seconds (list), median_epoch_seconds,
    mupd_s (= n_train / median epoch seconds / 1e6), fit_seconds (wall time of fit),
    other_load_cores (CPU that other processes used during the fit, in cores),
    test_rmse, valid_curve (per epoch: cumulative kernel seconds and test RMSE), and memory:
    rss_before_fit_mib, peak_rss_fit_mib (VmHWM reset just before fit), fit_increase_mib
    (peak during fit minus RSS before fit), ru_maxrss_mib (peak of the whole process),
    input_mib (the caller's arrays), model_mib = rating arrays (8 bytes per rating and per
    user: CSR of int32 items, float32 ratings, int64 row pointers) + factor matrices
    ((users + items) x k), increase_vs_model = fit_increase_mib / model_mib, and the block
    and thread imbalance per sub-epoch (see :class:`ImbalanceRecorder`).
    """
    import mfsgd

    train, test = load_split(data)
    train_input = as_input(train, input)
    imbalance = ImbalanceRecorder(n_threads)
    estimator = {"mf": mfsgd.MatrixFactorization, "svdpp": getattr(mfsgd, "SVDpp", None)}[model]
    if estimator is None:
        raise RuntimeError(f"this mfsgd ({mfsgd.__file__}) has no SVDpp")
    epoch_cpu = EpochCpuRecorder()
    model = estimator(n_factors=n_factors, n_epochs=n_epochs, n_threads=n_threads,
                      random_state=random_state, callbacks=[imbalance, epoch_cpu], **params)
    gc.collect()
    before = _status_kib()
    peak_reset = _reset_peak_rss()
    busy0, own0 = _busy_cpu_seconds(), _own_cpu_seconds()
    start = time.perf_counter()
    model.fit(train_input, validation=test if validate else None)
    fit_seconds = time.perf_counter() - start
    busy1, own1 = _busy_cpu_seconds(), _own_cpu_seconds()
    after = _status_kib()
    test_rmse = model.score(test)
    seconds = [record["seconds"] for record in model.history_]
    median = median_epoch_seconds(model.history_)
    cumulative = np.cumsum(seconds)
    curve = [{"epoch": r["epoch"], "seconds": float(c), "valid_rmse": r["valid_rmse"]}
             for r, c in zip(model.history_, cumulative) if "valid_rmse" in r]
    mib = 1.0 / 1024
    itemsize = model.user_factors_.itemsize
    model_bytes = (8 * (len(train[2]) + model.n_users_)
                   + (model.n_users_ + model.n_items_) * n_factors * itemsize)
    result = {
        "n_factors": n_factors, "n_threads": n_threads, "n_epochs": n_epochs, "input": input,
        "n_ratings": len(train[2]) + len(test[2]), "n_train": len(train[2]),
        "n_test": len(test[2]), "n_users": int(model.n_users_), "n_items": int(model.n_items_),
        "n_blocks": layout_blocks(model),
        "epoch_seconds": seconds, "median_epoch_seconds": median,
        "mupd_s": len(train[2]) / median / 1e6 if median > 0 else None,
        "fit_seconds": fit_seconds,
        "test_rmse": float(test_rmse), "train_rmse": float(model.history_[-1]["train_rmse"]),
        "valid_curve": curve,
        "rss_before_fit_mib": before.get("VmRSS", 0) * mib if before else None,
        "peak_rss_fit_mib": after.get("VmHWM", 0) * mib if (after and peak_reset) else None,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * mib,
        "peak_reset": peak_reset,
        # CPU used by other processes during the fit, in cores (0 on an idle machine): the
        # machine's busy time from /proc/stat minus this process's own CPU time, over the wall
        # (None for fits under MIN_LOAD_SECONDS: /proc/stat counts in 10 ms ticks)
        "other_load_cores": other_load(busy1 - busy0, own1 - own0, fit_seconds)
                            if busy0 is not None else None,
        "loadavg_1min_after": os.getloadavg()[0],
        "kernel_isa": kernel_isa(n_factors),
        "mfsgd_file": mfsgd.__file__,
        "input_mib": input_nbytes(train_input) / 2**20,
        "model_mib": model_bytes / 2**20,
    }
    result.update(imbalance.summary())
    result["cpu_epoch_seconds"] = epoch_cpu.median_seconds()
    if result["cpu_critical_seconds"]:
        result["cpu_mupd_s"] = len(train[2]) / result["cpu_critical_seconds"] / 1e6
    if result["peak_rss_fit_mib"] is not None and result["rss_before_fit_mib"] is not None:
        result["fit_increase_mib"] = result["peak_rss_fit_mib"] - result["rss_before_fit_mib"]
    else:  # no way to reset the high-water mark: fall back to the whole-process peak
        result["fit_increase_mib"] = (result["ru_maxrss_mib"] - result["rss_before_fit_mib"]
                                      if result["rss_before_fit_mib"] is not None else None)
    if result["fit_increase_mib"] is not None:
        result["increase_vs_model"] = result["fit_increase_mib"] / result["model_mib"]
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    config = json.loads(argv[0])
    result = measure_fit(**config)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
