"""One cell of ``benchmarks/paired.py``: paired rounds of one-epoch measurements.

Like measure.py, this module imports only the standard library, numpy, mfsgd and measure.py,
so that paired.py can run it as a script in a fresh process without putting the source
checkout on sys.path:

    python benchmarks/paired_cell.py '{"data": "r.npz", "n_factors": 32, "rounds": 20}'

prints one JSON object (the result of `measure_cell`) on its last line of stdout.
"""
import copy
import json
import sys
import threading
import time

import numpy as np

try:
    from . import measure
except ImportError:  # run as a script: this folder is on sys.path
    import measure

CONFIGS = ("1", "1/nb1", "2", "1+1")


def _fitted(train, n_factors, n_threads, n_blocks, random_state):
    """The state of a model fitted for one epoch, and its checked parameters."""
    import mfsgd
    model = mfsgd.MatrixFactorization(n_factors=n_factors, n_epochs=1, n_threads=n_threads,
                                      n_blocks=n_blocks, random_state=random_state)
    model.fit(train)
    return model.fit_state_, model.checked_params()


def _twin(state):
    """A copy of `state` that trains its own factors over the same rating arrays: the
    layout's read-only arrays are shared, its scratch arrays and every learned array copied."""
    layout = copy.copy(state.layout)
    for name in ("order", "block_sse", "block_seconds", "block_cpu_seconds"):
        setattr(layout, name, getattr(layout, name).copy())
    twin = copy.copy(state)
    twin.layout = layout
    for name in ("user_factors", "item_factors", "user_bias", "item_bias", "user_grad_sq",
                 "item_grad_sq"):
        setattr(twin, name, getattr(state, name).copy())
    return twin


def _opened(state, params, seed):
    """The state with its kernel opened on it, the learning rate and a generator of epochs."""
    from mfsgd.models.mf import MFKernel
    kernel = MFKernel(params)
    kernel.open(state)
    return {"kernel": kernel, "state": state, "lr": kernel.learning_rate(1),
            "rng": np.random.default_rng(seed)}


def _epoch(run):
    """One epoch of `run` with a fresh schedule and seed, as the epoch loop draws them."""
    from mfsgd.training.loop import draw_epoch
    blocks, seed = draw_epoch(run["state"].layout.n_blocks, run["rng"])
    run["kernel"].run(run["state"], blocks, run["lr"], seed)


def _timed(run):
    start = time.perf_counter()
    _epoch(run)
    return time.perf_counter() - start


def _timed_pair(a, b):
    """Wall seconds for epochs of `a` and `b` run at the same time in two threads."""
    barrier = threading.Barrier(2)

    def go(run):
        barrier.wait()
        _epoch(run)

    other = threading.Thread(target=go, args=(b,))
    other.start()
    start = time.perf_counter()
    go(a)
    other.join()
    return time.perf_counter() - start


def measure_cell(npz, n_factors, rounds, random_state=0):
    """Per-round epoch seconds of every configuration (see the module docstring)."""
    import mfsgd
    train, _ = measure.load_split(npz)
    runs = {}
    for name, n_threads, n_blocks in (("1", 1, "auto"), ("1/nb1", 1, 1), ("2", 2, "auto")):
        state, params = _fitted(train, n_factors, n_threads, n_blocks, random_state)
        if name == "1":
            # Two one-thread jobs over the same ratings (as two threads of one fit share them).
            runs["1+1"] = (_opened(_twin(state), params, random_state + 1),
                           _opened(_twin(state), params, random_state + 2))
        runs[name] = _opened(state, params, random_state)
    seconds = {name: [] for name in CONFIGS}
    for r in range(rounds):
        shift = r % len(CONFIGS)
        for name in CONFIGS[shift:] + CONFIGS[:shift]:
            run = runs[name]
            seconds[name].append(_timed_pair(*run) if name == "1+1" else _timed(run))
    layout = runs["1"]["state"].layout
    return {"n_train": int(len(train[2])), "n_factors": n_factors, "rounds": rounds,
            "n_blocks": int(layout.n_blocks), "mfsgd": mfsgd.__version__,
            "isa": measure.kernel_isa(n_factors), "mfsgd_file": mfsgd.__file__,
            "seconds": seconds}


def main(argv=None):
    spec = json.loads((sys.argv[1:] if argv is None else argv)[0])
    print(json.dumps(measure_cell(spec["data"], spec["n_factors"], spec["rounds"])))


if __name__ == "__main__":
    main()
