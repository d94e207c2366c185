"""FactorModel: what every factor model shares, whatever its math.

Training calls (``fit``, ``partial_fit``: set-up, one call at a time, Ctrl-C, divergence),
the learned attributes, prediction, scoring, recommendations, neighbours, ``save`` / ``load``
and pickling all work on the model's one :class:`~mfsgd.training.state.FitState`
(``fit_state_``).  A concrete model (:class:`mfsgd.MatrixFactorization`) adds its parameters
and its math through four hooks, and may choose where training runs through a fifth:

``checked_params()``
    The parameters, checked, as a dict (the keys the training code reads are listed in
    :meth:`FactorModel.checked_params`).
``_initial_arrays(rng, n_users, n_items, params)``
    The trained arrays of a fresh state (factors drawn from `rng`, biases, accumulators).
``_initial_factors(rng, n, k, dtype, params)``
    `n` fresh factor rows, for users and items that ``partial_fit`` or ``fold_in`` add.
``_kernel(params)``
    The model's kernel for the epoch loop (see :mod:`mfsgd.training.loop`).
``_backend(kernel, params)``
    Where the kernel's blocks run; by default in this process
    (:class:`~mfsgd.training.loop.LocalBackend`).  A distributed estimator returns its own
    backend here and inherits everything else.

A model with more fitted state sets the class attribute ``state_class`` to a FitState
subclass.
"""
import warnings
from contextlib import contextmanager

import numpy as np

from .. import metrics, persistence
from .. import recommend as _recommend
from .._estimator import EstimatorMixin
from .._kernels import _sgd
from .._validation import check_choice, check_int, check_n_threads
from ..data._idmap import IdMap, as_id_list, first_unknown
from ..data.ratings import as_ratings
from ..exceptions import DivergenceError, NotFittedError
from ..training.guards import deferred_interrupts, exclusive_training
from ..training.heap import release_freed_memory
from ..training.loop import LocalBackend, continue_training, train_epochs
from ..training.seen import seen_from_ratings
from ..training.setup import adopt, fingerprint, hold_out, indexed_pairs, lay_out
from ..training.state import FitState

SCORES = ("rmse", "mae")


class _Learned:
    """A learned attribute (``user_factors_``, ...): a field of the model's FitState."""

    def __init__(self, field, doc, missing=None):
        self.field, self.__doc__, self.missing = field, doc, missing

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, model, owner=None):
        if model is None:
            return self
        value = getattr(model.fit_state_, self.field)
        if value is None and self.missing:
            raise AttributeError(f"{type(model).__name__} has no {self.name}: {self.missing}")
        return value

    def __set__(self, model, value):
        setattr(model.fit_state_, self.field, value)


class FactorModel(EstimatorMixin):
    """Base class of the factor models: everything but their parameters and their math.

    The learned attributes (``user_factors_``, ``item_factors_``, ``user_bias_``,
    ``item_bias_``, ``global_mean_``, ``rating_range_``, ``history_``, ``best_epoch_``) are
    fields of ``fit_state_``, read and written through it.

    ``state_class`` (a class attribute) is the :class:`~mfsgd.training.state.FitState`
    class of the model's fitted state: a model with more state names a subclass here, and
    persistence reads it to know which fields a model file holds.
    """

    state_class = FitState

    user_factors_ = _Learned("user_factors", "ndarray, shape (n_users, k): user factors.")
    item_factors_ = _Learned("item_factors", "ndarray, shape (n_items, k): item factors.")
    user_bias_ = _Learned("user_bias", "ndarray, shape (n_users,): user biases.")
    item_bias_ = _Learned("item_bias", "ndarray, shape (n_items,): item biases.")
    global_mean_ = _Learned("global_mean", "float: the mean training rating (0 if unbiased).")
    rating_range_ = _Learned("rating_range", "(float, float): smallest and largest training "
                             "rating; predictions are clipped to it.")
    history_ = _Learned("history", "list of dict: one record per complete epoch.")
    best_epoch_ = _Learned("best_epoch", "int: with early stopping, the epoch whose factors "
                           "the model holds.", missing="set only by early stopping")

    # ------------------------------------------------------------------ the fitted state
    @property
    def fit_state_(self):
        """The model's :class:`~mfsgd.training.state.FitState`: everything it learned.

        The interface between the model and the rest of the package (training,
        recommendation, metrics, persistence).  Assigning a FitState makes the model fitted
        with it (``load`` does so).

        Raises
        ------
        NotFittedError
            When the model is not fitted.
        """
        state = self.__dict__.get("_state")
        if state is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        return state

    @fit_state_.setter
    def fit_state_(self, state):
        if not isinstance(state, self.state_class):
            raise TypeError(f"fit_state_ must be a {self.state_class.__name__}, got "
                            f"{type(state).__name__}")
        self._state = state

    def _is_fitted(self):
        return "_state" in self.__dict__

    def _forget_fit(self):
        # An item_titles_ the user set survives a new fit; titles taken from data do not.
        titles_from_data = self.__dict__.pop("_titles_from_data", False)
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")
                     and (n != "item_titles_" or titles_from_data)]:
            delattr(self, name)
        self.__dict__.pop("_state", None)

    def checked_params(self):
        """The parameters, checked and resolved, as a dict.

        The training code reads ``n_epochs``, ``validation_fraction``, ``patience``,
        ``tol``, ``callbacks`` (a list) and ``n_threads`` (an int); the rest belongs to the
        model's own math.

        Raises
        ------
        TypeError, ValueError
            Naming the first bad parameter.
        """
        raise NotImplementedError

    def _thread_count(self):
        return check_n_threads("n_threads", self.n_threads)

    # ------------------------------------------------------------------ training
    def fit(self, X, validation=None):
        """Train the model on `X` from fresh random factors.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix (rows = users, columns = items) or tuple
            The training ratings.  A (users, items, ratings[, timestamps]) tuple holds raw ids,
            as in ``Ratings.from_arrays``; a matrix's row and column indices are its raw ids
            (``Ratings.from_sparse``).  Only ids that hold a rating get factors: rows or
            columns of a matrix without any entry, and integer ids that do not occur, are
            unknown to the model (predicted from the global mean and the known bias, never
            recommended nor returned as neighbours).
        validation : same types as `X`, optional
            Ratings whose RMSE is recorded in `history_` after every epoch (and drives early
            stopping when `early_stopping` is on).

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this object is already being trained (``fit`` or ``partial_fit`` running in
            another thread, or called again from a callback).

        Notes
        -----
        **Ctrl-C.**  An interrupt (SIGINT, KeyboardInterrupt) during training lands between two
        sub-epochs (an epoch is `n_blocks` sub-epochs; the kernel runs them in calls of about
        0.05 s, so an interrupt lands within that or one sub-epoch) or between epochs, never
        inside one update of the model's state.  The model then holds
        the complete epochs, which `history_` lists, plus the finished sub-epochs of the
        interrupted epoch, which have no `history_` entry yet; it predicts, recommends and
        saves as it is.  The next ``partial_fit`` first completes that epoch, counting it as
        one of its epochs, so ``fit`` for n epochs, interrupted after m complete ones, then
        ``partial_fit(X, n_epochs=n - m)`` gives bit for bit the model and `history_` of an
        uninterrupted ``fit`` (``seconds`` aside); so does a pickled copy.  ``save`` does not
        store the unfinished epoch.  An interrupt before the first epoch leaves the model
        unfitted; with early stopping, an interrupted fit keeps its latest factors, not the
        best ones.  Interrupts are held back like this only when training runs in the main
        thread (Python delivers signals nowhere else).
        """
        with self._training_call("fit"):
            return self._fit(X, validation)

    def _fit(self, X, validation, n_epochs=None):
        params = self.checked_params()
        if n_epochs is not None:
            params["n_epochs"] = n_epochs
        train = as_ratings("X", X, copy=False)
        valid = None if validation is None else as_ratings("validation", validation, copy=False)
        self._warn_if_no_openmp(params["n_threads"])
        rng = np.random.default_rng(self.random_state)
        self._forget_fit()
        self._take_titles(X, replace_all=True)
        state, valid_pairs = self._new_state(train, valid, params, rng)
        shape = (train.n_users, train.n_items)
        # The layout holds its own copy of the ratings: without the last reference to the
        # converted rating set, its values are freed before the factors exist (peak memory).
        del train
        release_freed_memory()
        for name, array in self._initial_arrays(rng, *shape, params).items():
            setattr(state, name, array)
        self._state = state
        kernel = self._kernel(params)
        try:
            train_epochs(self, state, kernel, params, params["n_epochs"], valid_pairs,
                         self.early_stopping, self._backend(kernel, params))
        except DivergenceError:
            self._forget_fit()
            raise
        return self

    def _new_state(self, train, valid, params, rng):
        """A fresh FitState for `train` and the validation pairs in its index space; its
        learned arrays have no rows yet (the layout comes first, see :meth:`_fit`)."""
        user_map, item_map = IdMap(train.user_ids), IdMap(train.item_ids)
        # Held-out ratings for early stopping were rated too: remember them before the split.
        seen_indptr, seen_indices = seen_from_ratings(train)
        holdout = None
        if self.early_stopping and valid is None:
            train, holdout = hold_out(train, params["validation_fraction"], rng)
        global_mean = float(np.mean(train.data, dtype=np.float64)) if self.biased else 0.0
        state = self.state_class(
            rating_range=train.rating_range, global_mean=global_mean,
            **self._initial_arrays(rng, 0, 0, params),
            user_map=user_map, item_map=item_map, seen_indptr=seen_indptr,
            seen_indices=seen_indices, rng=rng)
        lay_out(state, train, self.n_blocks, rng)
        state.fingerprint = fingerprint(train)
        return state, (indexed_pairs(state, valid) if valid is not None else holdout)

    def partial_fit(self, X, n_epochs=1, validation=None):
        """Continue training from the current factors for `n_epochs` more epochs.

        On an unfitted model this is ``fit`` with `n_epochs` epochs.  Given the same training
        data as before it continues exactly where ``fit`` stopped: ``fit`` for m epochs then
        ``partial_fit`` for n equals ``fit`` for m + n epochs with the same seed.  Users or
        items that `X` introduces get fresh random factors and zero biases; the others keep
        theirs.  The global mean stays the one learned by ``fit``; early stopping is not
        applied here.

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple of raw ids
            As in ``fit``; ids new to the model get rows.
        n_epochs : int, default=1
        validation : same types as `X`, optional

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When this object is already being trained.
        DivergenceError
            When training diverges; the model is then left as it was before the call.

        Notes
        -----
        After an interrupted ``fit`` or ``partial_fit`` (see ``fit``), the interrupted epoch
        is completed first, on the data it started with, and counts as the first of the
        `n_epochs`.
        """
        with self._training_call("partial_fit"):
            return self._partial_fit(X, n_epochs, validation)

    def _partial_fit(self, X, n_epochs, validation):
        n_epochs = check_int("n_epochs", n_epochs, 0)
        if not self._is_fitted():
            return self._fit(X, validation, n_epochs)
        params = self.checked_params()
        state, kernel = self._state, self._kernel(params)
        backend = self._backend(kernel, params)
        train = as_ratings("X", X, copy=False)
        digest = fingerprint(train)
        if digest != state.fingerprint or state.layout is None:
            if n_epochs and state.partial_epoch is not None:
                continue_training(self, state, kernel, params, 1,
                                  self._validation_pairs(validation), backend)
                n_epochs -= 1
            with deferred_interrupts():
                adopt(state, train, self.n_blocks, self._factor_draw(state, params), digest)
        self._take_titles(X, replace_all=False)
        continue_training(self, state, kernel, params, n_epochs,
                          self._validation_pairs(validation), backend)
        return self

    def _backend(self, kernel, params):
        """Where training runs `kernel`'s blocks: in this process.  A distributed estimator
        overrides this (see :mod:`mfsgd.training.loop` for what a backend does)."""
        return LocalBackend(kernel)

    @contextmanager
    def _training_call(self, method):
        """One training call at a time on this object; no half-built model if set-up fails."""
        with exclusive_training(self, method):
            try:
                yield
            except BaseException:
                # The state is attached once set-up is complete (an exception before fit's
                # set-up began leaves the previous model untouched).
                if not self._is_fitted():
                    self._forget_fit()
                raise

    def _factor_draw(self, state, params):
        """``draw(n)``: fresh factor rows for new ids, in the state's k and dtype."""
        return lambda n: self._initial_factors(state.rng, n, state.n_factors,
                                               state.user_factors.dtype, params)

    def _take_titles(self, X, replace_all):
        """Keep the item titles a rating set carries (e.g. from load_movielens)."""
        titles = getattr(X, "item_titles", None)
        if titles is None:
            self.__dict__.setdefault("item_titles_", None)
            return
        kept = {} if replace_all or self.__dict__.get("item_titles_") is None \
            else dict(self.item_titles_)
        kept.update(titles)
        self.item_titles_ = kept
        self._titles_from_data = True

    def _validation_pairs(self, validation):
        return None if validation is None else \
            indexed_pairs(self._state, as_ratings("validation", validation, copy=False))

    def _warn_if_no_openmp(self, n_threads):
        if n_threads > 1 and not _sgd.HAVE_OPENMP and self.n_threads is not None:
            warnings.warn("mfsgd was built without OpenMP; training uses one thread",
                          RuntimeWarning, stacklevel=4)

    def _add_user(self, user, factors, bias):
        """Give raw id `user` these factors and bias, adding a row when it is new."""
        state = self.fit_state_
        raw = as_id_list(user)
        row = int(state.user_map.lookup(raw, "user")[0])
        if row < 0:
            state.user_map, _ = state.user_map.extended(raw)
            row = len(state.user_map) - 1
            state.grow(row + 1 - state.n_users, 0,
                       self._factor_draw(state, self.checked_params()))
        state.user_factors[row] = factors
        state.user_bias[row] = bias

    # ------------------------------------------------------------------ ids and factors
    @property
    def n_users_(self):
        """Number of users with factors."""
        return self.fit_state_.n_users

    @property
    def n_items_(self):
        """Number of items with factors."""
        return self.fit_state_.n_items

    @property
    def user_ids_(self):
        """Raw user id of each factor row."""
        return self.fit_state_.user_map.all_raw()

    @property
    def item_ids_(self):
        """Raw item id of each factor row."""
        return self.fit_state_.item_map.all_raw()

    def user_factors(self, users):
        """Factor rows of users given by raw id (rows of `user_factors_`).

        Parameters
        ----------
        users : id or array-like of ids

        Returns
        -------
        ndarray, shape (n_factors,) for one id, else (len(users), n_factors)

        Raises
        ------
        KeyError
            When an id is unknown to the model.
        """
        state = self.fit_state_
        return _rows(state.user_map, state.user_factors, users, "user")

    def item_factors(self, items):
        """Factor rows of items given by raw id (rows of `item_factors_`); see user_factors."""
        state = self.fit_state_
        return _rows(state.item_map, state.item_factors, items, "item")

    # ------------------------------------------------------------------ prediction
    def predict(self, users, items):
        """Predict ratings for (user, item) pairs.

        Parameters
        ----------
        users, items : array-like of ids, or scalars
            Raw ids (for a model fitted on a scipy.sparse matrix, its row and column
            indices).  Unknown users or items, including ids that held no rating in
            training, fall back to the global mean plus the known bias.

        Returns
        -------
        ndarray of float64 (a float for scalar input), clipped to the training rating range.
        """
        state = self.fit_state_
        scalar = np.ndim(users) == 0 and np.ndim(items) == 0
        user_index = state.user_map.lookup(users, "users")
        item_index = state.item_map.lookup(items, "items")
        if user_index.shape != item_index.shape:
            raise ValueError(f"users and items must have the same length, got "
                             f"{len(user_index)} and {len(item_index)}")
        out = state.predict_rows(user_index, item_index, self._thread_count())
        return float(out[0]) if scalar else out

    def score(self, X, metric="rmse"):
        """Error of the predictions on the ratings `X`: RMSE or MAE (lower is better).

        Parameters
        ----------
        X : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple
            Ratings with the same kind of ids as in fit; unknown users or items get the
            cold-start prediction (global mean plus the known bias).
        metric : {"rmse", "mae"}, default="rmse"
            Root mean squared error or mean absolute error (see :mod:`mfsgd.metrics`).

        Returns
        -------
        float
        """
        state = self.fit_state_
        check_choice("metric", metric, SCORES)
        users, items, values = indexed_pairs(state, as_ratings("X", X, copy=False))
        predicted = state.predict_rows(users, items, self._thread_count())
        return getattr(metrics, metric)(values, predicted)

    # ------------------------------------------------------------------ recommendation
    def recommend(self, user, n=10, exclude_seen=True, items=None):
        """The `n` items with the highest predicted rating for `user`.

        See :func:`mfsgd.recommend.recommend`.

        Parameters
        ----------
        user : id
            A user known to the model; an unknown user raises KeyError (no cold start).
        n : int, default=10
        exclude_seen : bool, default=True
            Leave out the items the user rated in training.
        items : array-like of ids, optional
            Rank only these items.

        Returns
        -------
        item_ids : ndarray
            Raw item ids, best first (at most `n`).
        scores : ndarray of float64
            Unclipped predicted ratings of those items.
        """
        return _recommend.recommend(self, user, n, exclude_seen, items)

    def recommend_all(self, users=None, n=10, exclude_seen=True):
        """The `n` best items for each of `users` (default: all); see
        :func:`mfsgd.recommend.recommend_all`.

        Parameters
        ----------
        users : array-like of ids, optional
        n : int, default=10
        exclude_seen : bool, default=True

        Returns
        -------
        item_ids : ndarray, shape (len(users), n)
            Raw item ids; rows with fewer than `n` candidates are padded with -1 (integer
            ids) or "" (string ids).
        scores : ndarray of float64, shape (len(users), n)
            -inf in padded slots.
        """
        return _recommend.recommend_all(self, users, n, exclude_seen)

    def similar_items(self, item, n=10):
        """The `n` items nearest to `item` by cosine similarity of item factors.

        Parameters
        ----------
        item : id
        n : int, default=10

        Returns
        -------
        item_ids : ndarray
            Raw ids, most similar first, never `item` itself.
        similarities : ndarray of float64
        """
        return _recommend.similar_items(self, item, n)

    def similar_users(self, user, n=10):
        """The `n` users nearest to `user` by cosine similarity of user factors.

        Parameters
        ----------
        user : id
        n : int, default=10

        Returns
        -------
        user_ids : ndarray
            Raw ids, most similar first, never `user` itself.
        similarities : ndarray of float64
        """
        return _recommend.similar_users(self, user, n)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save the fitted model to one .npz file at `path` (atomically, no suffix added).

        See :mod:`mfsgd.persistence` for the file's contents; callbacks are not saved.

        Parameters
        ----------
        path : str or os.PathLike
        """
        persistence.save(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        model
            Equal to the saved model, array for array.

        Raises
        ------
        ValueError
            When the file is damaged, altered, not an mfsgd model, or of a newer format.
        """
        return persistence.load(path, cls)


def _rows(id_map, factors, raw, kind):
    index = id_map.lookup(raw, f"{kind}s")
    if (index < 0).any():
        raise KeyError(f"unknown {kind} id {first_unknown(raw, index)!r}")
    rows = factors[index]
    return rows[0] if np.ndim(raw) == 0 else rows
