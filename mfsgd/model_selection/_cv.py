"""Fitting clones on folds, in threads, and cross_validate."""
import copy
import inspect
import numbers
import os
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from functools import partial

import numpy as np

from .._estimator import clone
from ..training.guards import stop_event
from .._progress import TaskProgress
from .._validation import check_int
from ..metrics import mae, rmse
from ._split import check_cv

#: Scoring names and their metric; lower is better for every one of them.
SCORERS = {"rmse": rmse, "mae": mae}


def check_scoring(scoring):
    """Tuple of metric names from a name or a sequence of names (in SCORERS)."""
    names = (scoring,) if isinstance(scoring, str) else scoring
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"scoring must be a metric name or a sequence of names, got "
                        f"{scoring!r}") from None
    if not names:
        raise ValueError("scoring is empty: name at least one metric")
    for name in names:
        if name not in SCORERS:
            raise ValueError(f"scoring must name metrics among {sorted(SCORERS)}, got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"scoring names a metric twice: {scoring!r}")
    return names


def check_n_jobs(n_jobs):
    """Number of worker threads: None -> 1, -1 -> all cores, else a positive int."""
    if n_jobs is None:
        return 1
    n_jobs = check_int("n_jobs", n_jobs)
    if n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive int or -1 (all cores), got {n_jobs!r}")
    return n_jobs


def check_error_score(error_score):
    """Return "raise" or `error_score` as a float; raise TypeError otherwise."""
    if isinstance(error_score, str) and error_score == "raise":
        return error_score
    if isinstance(error_score, (bool, np.bool_)) or not isinstance(error_score, numbers.Real):
        raise TypeError(f"error_score must be 'raise' or a number, got {error_score!r}")
    return float(error_score)


def threads_per_fit(n_workers):
    """OpenMP threads for each of `n_workers` concurrent fits (None: the model's own choice)."""
    if n_workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // n_workers)


def fold_clone(model, params=None, n_threads=None):
    """An unfitted copy of `model` with `params` set.

    A random_state that is not an int or None (a numpy Generator) is deep-copied, so every
    copy starts from the same state and concurrent fits neither share nor race on it.
    `n_threads` replaces the model's n_threads only where neither the model nor `params`
    set it.
    """
    estimator = clone(model)
    if params:
        estimator.set_params(**params)
    state = getattr(estimator, "random_state", None)
    if state is not None and not isinstance(state, numbers.Integral):
        estimator.random_state = copy.deepcopy(state)
    if n_threads is not None and getattr(estimator, "n_threads", 0) is None:
        estimator.n_threads = n_threads
    return estimator


def fit_and_score(model, params, train, test, scoring, n_threads, error_score,
                  keep_estimator=False, implicit=None):
    """Fit a clone on `train` (with the test pairs as implicit feedback when `implicit` is
    "test"), score it on `test`.

    Returns a dict: scores {name: float}, fit_time, score_time and, with `keep_estimator`,
    the fitted estimator.  A fit that diverges (FloatingPointError) gets `error_score` for
    every metric, with a RuntimeWarning, unless error_score is "raise".  The clone trains
    with its own `verbose` and `show_progress` off (fold fits run in threads, and their
    tables and bars would write over each other and over the caller's progress); a kept
    estimator gets them back.
    """
    estimator = fold_clone(model, params, n_threads)
    own_output = {name: value for name, value in estimator.get_params(deep=False).items()
                  if name in ("verbose", "show_progress")}
    estimator.set_params(**{name: False for name in own_output})
    start = time.perf_counter()
    try:
        if implicit == "test":
            test_users, test_items, _ = test.to_arrays()
            estimator.fit(train, implicit=(test_users, test_items))
        else:
            estimator.fit(train)
    except FloatingPointError as error:
        if error_score == "raise":
            raise
        warnings.warn(f"fit failed with {params or 'the model parameters'}, scored "
                      f"{error_score}: {error}", RuntimeWarning, stacklevel=2)
        result = {"scores": {name: error_score for name in scoring},
                  "fit_time": time.perf_counter() - start, "score_time": 0.0}
    else:
        fit_time = time.perf_counter() - start
        start = time.perf_counter()
        users, items, values = test.to_arrays()
        predicted = estimator.predict(users, items)
        scores = {name: SCORERS[name](values, predicted) for name in scoring}
        result = {"scores": scores, "fit_time": fit_time,
                  "score_time": time.perf_counter() - start}
    if keep_estimator:
        result["estimator"] = estimator.set_params(**own_output)
    return result


INTERRUPT_POLL_SECONDS = 0.1


def run_tasks(tasks, n_workers, on_done=None):
    """Run callables, in `n_workers` threads when above 1; results in task order.

    `on_done(index, result)` is called in the calling thread as each task finishes.  The
    first exception (or a KeyboardInterrupt in the calling thread) cancels the tasks not yet
    started, stops the fits running in the worker threads at their next sub-epoch, and is
    raised.
    """
    results = [None] * len(tasks)
    if n_workers <= 1:
        for index, task in enumerate(tasks):
            results[index] = task()
            if on_done is not None:
                on_done(index, results[index])
        return results
    stop = threading.Event()

    def run(task):
        with stop_event(stop):
            return task()

    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="mfsgd-cv") as pool:
        futures = {pool.submit(run, task): index for index, task in enumerate(tasks)}
        try:
            pending = set(futures)
            while pending:
                # Short waits: the operating system may hand SIGINT to any thread, and then
                # only the main thread's return to Python code runs the handler.  A blocking
                # wait would hold Ctrl-C back until a fold fit ends.
                done, pending = wait(pending, timeout=INTERRUPT_POLL_SECONDS,
                                     return_when=FIRST_COMPLETED)
                for future in sorted(done, key=futures.get):
                    index = futures[future]
                    results[index] = future.result()
                    if on_done is not None:
                        on_done(index, results[index])
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return results


def cross_validate(model, ratings, cv=5, scoring=("rmse", "mae"), n_jobs=1,
                   return_estimator=False, verbose=False, error_score=np.nan, implicit=None):
    """Fit and score a clone of `model` on every fold of a cross-validation.

    Parameters
    ----------
    model : MatrixFactorization
        Left untouched; each fold fits ``mfsgd.clone(model)`` with the same parameters, hence
        the same `random_state`, so results do not depend on `n_jobs`.
    ratings : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple
        The data to split; may be None when `cv` carries its own folds (PredefinedSplit).
    cv : int, splitter or iterable of (train, test) pairs, default=5
        An int k means ``KFold(k, shuffle=True, random_state=0)``: fixed folds, so repeated
        calls (and searches) compare models on the same splits; pass a KFold with another
        random_state for other folds.  A splitter is mfsgd's KFold or PredefinedSplit, a
        scikit-learn splitter (KFold, ShuffleSplit, StratifiedKFold, ...: its index arrays
        are positions into the ratings' CSR order; it gets one sample per rating, the class
        of each rating's value as y, and no groups), or anything with ``split(ratings)``
        and ``get_n_splits()`` yielding rating sets or position arrays.  Pairs are rating sets (each side a
        Ratings, scipy.sparse matrix or tuple) or position arrays.
    scoring : str or sequence of str, default=("rmse", "mae")
        Metrics computed on each test fold from ``model.predict`` (lower is better).  Test
        users or items absent from a training fold get the model's cold-start prediction.
    n_jobs : int or None, default=1
        Folds fitted at once, in threads (the SGD kernel releases the GIL); -1 for one per
        core.  With more than one, each clone whose n_threads is None gets
        ``max(1, os.cpu_count() // n_jobs)`` OpenMP threads so that the total matches the
        cores; results are the same whatever the thread counts.
    return_estimator : bool, default=False
        Also return the fitted clones under "estimator".
    verbose : bool or int, default=False
        Print one line per fold as it finishes, with a tqdm progress bar over the folds when
        tqdm is installed (the lines are written through tqdm, so they and the bar do not
        garble each other).  The lines also go to the "mfsgd" logger.  The folds' own
        per-epoch output (the model's `verbose` and `show_progress`) is off.
    error_score : "raise" or float, default=nan
        Score of a fold whose fit diverges (DivergenceError), with a RuntimeWarning; "raise"
        raises instead.  Other errors always raise.
    implicit : None or "test", default=None
        "test": Koren's protocol for SVD++ (the Netflix Prize setting) — each fold's model is
        fitted with the fold's test pairs (not their ratings) as implicit feedback
        (``fit(train, implicit=(test users, test items))``), as when it is known which items
        a user rated but not how.  The model must take ``implicit`` (:class:`mfsgd.SVDpp`).
        Its scores use information a plain evaluation does not have: report them apart.

    Returns
    -------
    dict
        "test_<metric>" for each metric, "fit_time" and "score_time" (seconds): ndarrays of
        one value per fold; "estimator": list of fitted models with `return_estimator`.
    """
    names = check_scoring(scoring)
    if implicit is not None:
        if implicit != "test":
            raise ValueError(f"implicit must be None or 'test', got {implicit!r}")
        if "implicit" not in inspect.signature(model.fit).parameters:
            raise TypeError(f"implicit='test' needs a model whose fit takes implicit feedback "
                            f"(mfsgd.SVDpp), got {type(model).__name__}")
    n_jobs = check_n_jobs(n_jobs)
    error_score = check_error_score(error_score)
    folds = list(check_cv(cv).split(ratings))
    n_workers = min(n_jobs, len(folds))
    n_threads = threads_per_fit(n_workers)
    tasks = [partial(fit_and_score, model, None, train, test, names, n_threads, error_score,
                   bool(return_estimator), implicit) for train, test in folds]

    with TaskProgress("cross_validate", len(tasks), int(verbose)) as progress:
        def report(index, result):
            progress.advance()
            progress.say(f"[cross_validate] fold {index + 1}/{len(folds)}: "
                         + ", ".join(f"{name} {result['scores'][name]:.4f}" for name in names)
                         + f" (fit {result['fit_time']:.2f} s)")

        results = run_tasks(tasks, n_workers, report)
    output = {f"test_{name}": np.array([r["scores"][name] for r in results]) for name in names}
    output["fit_time"] = np.array([r["fit_time"] for r in results])
    output["score_time"] = np.array([r["score_time"] for r in results])
    if return_estimator:
        output["estimator"] = [r["estimator"] for r in results]
    return output

