"""Hyperparameter search: ParameterGrid, ParameterSampler, GridSearchCV, RandomizedSearchCV."""
import itertools
import numbers
import time
import warnings
from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np

from .._estimator import EstimatorMixin
from ..training.guards import exclusive_training
from .._progress import TaskProgress
from .._validation import check_int
from ..data.ratings import as_ratings
from ..exceptions import NotFittedError
from ._cv import (check_error_score, check_n_jobs, check_scoring, fit_and_score, fold_clone,
                  run_tasks, threads_per_fit)
from ._split import check_cv


def _dict_list(name, value):
    """A list of dicts from a dict or a sequence of dicts, with string keys."""
    dicts = [value] if isinstance(value, Mapping) else value
    if not isinstance(dicts, Sequence) or isinstance(dicts, str) or \
            not all(isinstance(d, Mapping) for d in dicts):
        raise TypeError(f"{name} must be a dict or a list of dicts, got {value!r}")
    if not dicts:
        raise ValueError(f"{name} is empty")
    for d in dicts:
        for key in d:
            if not isinstance(key, str):
                raise TypeError(f"{name} keys must be parameter names, got {key!r}")
    return list(dicts)


def _values(name, key, values):
    """The candidate values of one parameter as a list (a non-empty, non-string sequence)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name}[{key!r}] must be a list of values, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{name}[{key!r}] is empty")
    return list(values)


def _plain(value):
    """NumPy scalars as Python scalars, so parameters print and compare plainly."""
    return value.item() if isinstance(value, np.generic) else value


class ParameterGrid:
    """Every combination of parameter values, like scikit-learn's ParameterGrid.

    Parameters
    ----------
    param_grid : dict of str to list, or list of such dicts
        Each dict spans the product of its lists (keys in sorted order); a list of dicts
        chains their grids.

    Examples
    --------
    >>> list(ParameterGrid({"n_factors": [10, 20], "learning_rate": [0.01]}))
    [{'learning_rate': 0.01, 'n_factors': 10}, {'learning_rate': 0.01, 'n_factors': 20}]
    """

    def __init__(self, param_grid):
        self.grids = [{key: _values("param_grid", key, values)
                       for key, values in sorted(grid.items())}
                      for grid in _dict_list("param_grid", param_grid)]

    def __iter__(self):
        for grid in self.grids:
            keys = list(grid)
            for combination in itertools.product(*grid.values()):
                yield {key: _plain(value) for key, value in zip(keys, combination)}

    def __len__(self):
        return sum(int(np.prod([len(v) for v in grid.values()])) for grid in self.grids)


class ParameterSampler:
    """`n_iter` parameter settings drawn at random, like scikit-learn's ParameterSampler.

    Parameters
    ----------
    param_distributions : dict of str to list or distribution, or list of such dicts
        A list is sampled uniformly; a distribution is anything with
        ``rvs(random_state=...)``, such as ``scipy.stats.loguniform(1e-3, 1e-1)``.  With a
        list of dicts each draw first picks a dict uniformly.  When every value is a list,
        settings are drawn without replacement from their grid (at most its size, with a
        warning when `n_iter` is larger).
    n_iter : int
        Number of settings.
    random_state : int, numpy Generator or None
        Seed: the same int always gives the same settings.
    """

    def __init__(self, param_distributions, n_iter, random_state=None):
        self.dists = [{key: self._checked(key, value) for key, value in sorted(d.items())}
                      for d in _dict_list("param_distributions", param_distributions)]
        self.n_iter = check_int("n_iter", n_iter, 1)
        self.random_state = random_state

    @staticmethod
    def _checked(key, value):
        if hasattr(value, "rvs"):
            return value
        return _values("param_distributions", key, value)

    def _all_lists(self):
        return all(isinstance(v, list) for d in self.dists for v in d.values())

    def __len__(self):
        if self._all_lists():
            return min(self.n_iter, len(ParameterGrid(self.dists)))
        return self.n_iter

    def __iter__(self):
        rng = np.random.default_rng(self.random_state)
        if self._all_lists():
            grid = list(ParameterGrid(self.dists))
            if self.n_iter > len(grid):
                warnings.warn(f"n_iter={self.n_iter} exceeds the {len(grid)} settings of the "
                              f"grid; using each once", UserWarning, stacklevel=2)
            for index in rng.choice(len(grid), size=min(self.n_iter, len(grid)), replace=False):
                yield grid[index]
            return
        for _ in range(self.n_iter):
            dist = self.dists[int(rng.integers(len(self.dists)))]
            yield {key: _plain(value.rvs(random_state=rng)) if hasattr(value, "rvs")
                   else _plain(value[int(rng.integers(len(value)))])
                   for key, value in dist.items()}


class _BaseSearchCV(EstimatorMixin):
    """Shared fit / results / refit of the searches; subclasses define ``_candidates``."""

    def _candidates(self):
        raise NotImplementedError

    def fit(self, ratings):
        """Cross-validate every candidate setting, then refit the best on all of `ratings`.

        Each (candidate, fold) pair fits ``mfsgd.clone(model)`` with the candidate's
        parameters; pairs run `n_jobs` at a time in threads.

        Parameters
        ----------
        ratings : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this search object is already fitting (in another thread).
        """
        with exclusive_training(self, "fit"):
            return self._fit(ratings)

    def _fit(self, ratings):
        ratings = as_ratings("ratings", ratings)
        names = check_scoring(self.scoring)
        n_jobs = check_n_jobs(self.n_jobs)
        error_score = check_error_score(self.error_score)
        verbose = check_int("verbose", int(self.verbose) if isinstance(self.verbose, bool)
                            else self.verbose, 0)
        if not isinstance(self.refit, (bool, np.bool_)):
            raise TypeError(f"refit must be True or False, got {self.refit!r}")
        candidates = list(self._candidates())
        for params in candidates:            # unknown parameter names fail now, not in a thread
            fold_clone(self.model, params)
        folds = list(check_cv(self.cv).split(ratings))
        n_folds = len(folds)
        pairs = [(c, f) for c in range(len(candidates)) for f in range(n_folds)]
        n_workers = min(n_jobs, len(pairs))
        tasks = [partial(fit_and_score, self.model, candidates[c], folds[f][0], folds[f][1],
                         names, threads_per_fit(n_workers), error_score) for c, f in pairs]
        progress = _SearchProgress(type(self).__name__, candidates, n_folds, names[0], verbose,
                                   len(tasks))
        try:
            results = run_tasks(tasks, n_workers, lambda i, r: progress.done(*pairs[i], r))
        finally:
            progress.close()
        self.n_splits_ = n_folds
        table = _results_table(candidates, results, n_folds, names)
        primary = table[f"mean_test_{names[0]}"]
        if np.isnan(primary).all():
            raise ValueError(f"every candidate failed to fit (their {names[0]} is NaN); see the "
                             f"warnings, and try smaller learning rates")
        self.best_index_ = int(np.argmin(np.where(np.isnan(primary), np.inf, primary)))
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(primary[self.best_index_])
        self.cv_results_ = _as_frame(table)
        if self.refit:
            start = time.perf_counter()
            self.best_estimator_ = fold_clone(self.model, self.best_params_).fit(ratings)
            self.refit_time_ = time.perf_counter() - start
        return self

    def _best(self):
        if not hasattr(self, "best_estimator_"):
            raise NotFittedError(f"this {type(self).__name__} has no best_estimator_; call fit "
                                 f"with refit=True first")
        return self.best_estimator_

    def predict(self, users, items):
        """Predict ratings with `best_estimator_` (see MatrixFactorization.predict).

        Parameters
        ----------
        users, items : array-like of ids, or scalars

        Returns
        -------
        ndarray of float64, or float
        """
        return self._best().predict(users, items)

    def score(self, X, metric="rmse"):
        """Error of `best_estimator_` on the ratings `X` (see MatrixFactorization.score).

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple
        metric : {"rmse", "mae"}, default="rmse"

        Returns
        -------
        float
        """
        return self._best().score(X, metric=metric)

    def _is_fitted(self):
        return hasattr(self, "cv_results_")


_SEARCH_DOC = """

    Parameters
    ----------
    model : MatrixFactorization
        Template: every fit uses ``mfsgd.clone(model)`` with a candidate's parameters set
        (so the same random_state); the model itself is never fitted.
    {candidates}
    cv : int, splitter or iterable of (train, test) pairs, default=5
        As in :func:`cross_validate`: an int k is ``KFold(k, shuffle=True, random_state=0)``,
        so every candidate is scored on the same folds; scikit-learn splitters work too.
    scoring : str or sequence of str, default="rmse"
        Metric(s) among "rmse" and "mae", lower is better; the first one picks the best
        candidate.
    n_jobs : int or None, default=1
        (candidate, fold) fits run at once, in threads; -1 for one per core.  With more than
        one, each fit whose n_threads is None gets ``max(1, os.cpu_count() // n_jobs)``
        OpenMP threads.  Results do not depend on it.
    refit : bool, default=True
        Refit the best candidate on all the ratings given to fit, as `best_estimator_`.
    verbose : int, default=0
        0: silent.  1: a tqdm progress bar over the fits when tqdm is installed, and one line
        per candidate (parameters, mean score, seconds spent fitting) as its last fold
        finishes.  2: also one line per fold.  The lines also go to the "mfsgd" logger;
        they, and console logging, are written through tqdm so that they do not garble the
        bar.  The fold fits' own per-epoch output (the model's `verbose`, `show_progress`)
        is off; the refit of the best candidate keeps it.
    error_score : "raise" or float, default=nan
        Score of a fit that diverges (DivergenceError, e.g. from too large a learning rate),
        with a RuntimeWarning; such a candidate ranks last.  "raise" raises instead.
    {extra}
    Attributes
    ----------
    cv_results_ : pandas.DataFrame, or dict of ndarray without pandas
        One row per candidate, columns: "params" (dicts), "param_<name>" (None where a
        candidate lacks the parameter), "split<i>_test_<metric>", "mean_test_<metric>",
        "std_test_<metric>", "rank_test_<metric>" (1 = best), "mean_fit_time",
        "std_fit_time", "mean_score_time", "std_score_time".  It is a pandas DataFrame when
        pandas is installed (``cv_results_.to_dict("list")`` gives the dict form), else a
        dict of ndarrays.
    best_index_ : int
        Row of the best candidate in `cv_results_`.
    best_params_ : dict
    best_score_ : float
        Mean cross-validated score of the best candidate (an error: lower is better).
    best_estimator_ : MatrixFactorization
        With `refit`: the best candidate fitted on all the ratings.
    refit_time_ : float
        Seconds of that refit.
    n_splits_ : int
        Number of folds.
"""


class GridSearchCV(_BaseSearchCV):
    """Exhaustive search over a grid of parameters, scored by cross-validation."""

    def __init__(self, model, param_grid, cv=5, scoring="rmse", n_jobs=1, refit=True,
                 verbose=0, error_score=np.nan):
        self.model = model
        self.param_grid = param_grid
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.verbose = verbose
        self.error_score = error_score

    def _candidates(self):
        return ParameterGrid(self.param_grid)


class RandomizedSearchCV(_BaseSearchCV):
    """Search over `n_iter` random parameter settings, scored by cross-validation."""

    def __init__(self, model, param_distributions, n_iter=10, cv=5, scoring="rmse", n_jobs=1,
                 refit=True, random_state=None, verbose=0, error_score=np.nan):
        self.model = model
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.random_state = random_state
        self.verbose = verbose
        self.error_score = error_score

    def _candidates(self):
        return ParameterSampler(self.param_distributions, self.n_iter, self.random_state)


if GridSearchCV.__doc__:                 # None under python -OO
    GridSearchCV.__doc__ += _SEARCH_DOC.format(
        candidates="param_grid : dict of str to list, or list of such dicts\n"
                   "        Candidate values; every combination is tried (see ParameterGrid).",
        extra="")
    RandomizedSearchCV.__doc__ += _SEARCH_DOC.format(
        candidates="param_distributions : dict of str to list or distribution, or list of "
                   "dicts\n        Lists are sampled uniformly, distributions (anything with "
                   "``rvs(random_state=...)``,\n        e.g. ``scipy.stats.loguniform(1e-3, "
                   "1e-1)``) through rvs (see ParameterSampler).\n"
                   "    n_iter : int, default=10\n        Number of settings tried.",
        extra="random_state : int, numpy Generator or None\n        Seed of the draws: the "
              "same int always tries the same settings.\n")


def _results_table(candidates, results, n_folds, names):
    """cv_results_ as a dict of ndarrays, one entry per candidate."""
    n = len(candidates)
    table = {"params": _object_column(candidates)}
    for key in sorted({key for params in candidates for key in params}):
        table[f"param_{key}"] = _column([params.get(key) for params in candidates])
    for name in names:
        scores = np.array([[results[c * n_folds + f]["scores"][name] for f in range(n_folds)]
                           for c in range(n)], dtype=np.float64)
        for f in range(n_folds):
            table[f"split{f}_test_{name}"] = scores[:, f]
        table[f"mean_test_{name}"] = scores.mean(axis=1)
        table[f"std_test_{name}"] = scores.std(axis=1)
        table[f"rank_test_{name}"] = _min_rank(table[f"mean_test_{name}"])
    for kind in ("fit", "score"):
        times = np.array([[results[c * n_folds + f][f"{kind}_time"] for f in range(n_folds)]
                          for c in range(n)])
        table[f"mean_{kind}_time"] = times.mean(axis=1)
        table[f"std_{kind}_time"] = times.std(axis=1)
    return table


def _min_rank(scores):
    """Rank 1 for the lowest score, ties sharing the lowest rank, NaN ranked last."""
    keys = np.where(np.isnan(scores), np.inf, scores)
    return np.searchsorted(np.sort(keys), keys, side="left").astype(np.int64) + 1


def _object_column(values):
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _column(values):
    if all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    return _object_column(values)


def _as_frame(table):
    try:
        import pandas
    except ImportError:
        return table
    return pandas.DataFrame(table)


def _format_params(params):
    """name=value pairs, floats to 4 significant digits."""
    return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value!r}"
                     for key, value in params.items()) or "(model parameters)"


class _SearchProgress:
    """Per-candidate lines (and a tqdm bar over the fits) while a search runs."""

    def __init__(self, title, candidates, n_folds, metric, verbose, n_tasks):
        self.title, self.candidates, self.n_folds = title, candidates, n_folds
        self.metric, self.verbose = metric, verbose
        self.scores = [[] for _ in candidates]
        self.seconds = [0.0] * len(candidates)
        self.finished = 0
        self.output = TaskProgress(title, n_tasks, verbose)

    def done(self, candidate, fold, result):
        """Record one finished (candidate, fold) fit."""
        score = result["scores"][self.metric]
        self.scores[candidate].append(score)
        self.seconds[candidate] += result["fit_time"] + result["score_time"]
        self.output.advance()
        if self.verbose > 1:
            self.output.say(f"[{self.title}] candidate {candidate + 1}/{len(self.candidates)} "
                            f"fold {fold + 1}/{self.n_folds}: {self.metric} {score:.4f} "
                            f"(fit {result['fit_time']:.2f} s)")
        if len(self.scores[candidate]) == self.n_folds:
            self.finished += 1
            scores = np.array(self.scores[candidate])
            self.output.say(f"[{self.title}] {self.finished}/{len(self.candidates)} "
                            f"{_format_params(self.candidates[candidate])}: "
                            f"{self.metric} {scores.mean():.4f} "
                            f"(+/- {scores.std():.4f}) in {self.seconds[candidate]:.1f} s")

    def close(self):
        """Close the progress bar, if any."""
        self.output.close()
