"""DaskMatrixFactorization: MatrixFactorization with the ratings and the SGD on Dask workers.

The estimator is a :class:`mfsgd.MatrixFactorization` whose ``fit`` reads a dask DataFrame and
whose training backend (:class:`DaskBackend`) runs the blocks as Dask tasks; everything else
(the epoch loop, the fitted state, prediction, recommendation, persistence) is the local
model's.  The client holds the :class:`~mfsgd.training.state.FitState`, built from the
distributed summary of the ratings with every random draw of a local fit in the same order,
so that both give the same bytes.  The training ratings stay on the workers; validation
ratings are gathered on the client.
"""
import copy
import warnings

import numpy as np

from ..data._idmap import IdMap
from ..exceptions import DivergenceError
from ..models.mf import MatrixFactorization
from ..training.layout import auto_n_blocks
from ..training.loop import draw_epoch, train_epochs
from ..training.setup import indexed_pairs
from . import _blocks, _pipeline
from ._driver import CHECKPOINTS, BlockEpochDriver


class DaskMatrixFactorization(MatrixFactorization):
    """Matrix factorization trained by blocked SGD on a Dask cluster.

    Takes the parameters of :class:`mfsgd.MatrixFactorization` (``n_threads`` has no effect
    on training: each block runs on one worker thread) plus `client` and `checkpoint`.  With
    the same `random_state` and `n_blocks`, ``fit(ddf).to_local()`` equals
    ``MatrixFactorization(...).fit(Ratings.from_dataframe(ddf.compute()))`` bit for bit:
    factors, biases, id maps, the generator and the training and validation RMSE and
    objective in ``history_``, whatever the number of workers or partitions.  Epochs run in
    the local model's epoch loop (:mod:`mfsgd.training.loop`), so `history_`, `callbacks`
    (called with this estimator), `verbose`, `show_progress`, divergence and Ctrl-C behave
    as locally.  `early_stopping` needs a validation set given to ``fit``
    (``validation_fraction`` is not used).  Once fitted it predicts, recommends and saves
    like a :class:`mfsgd.MatrixFactorization`.

    Parameters
    ----------
    client : distributed.Client or None, default=None
        The cluster to train on; None uses the current client.
    checkpoint : {"sub-epoch", "epoch"}, default="sub-epoch"
        How often the client gathers the factor blocks, from which training resumes when a
        worker is lost: after every sub-epoch (training resumes after the last completed
        sub-epoch; the client receives the whole model once per sub-epoch), or once per
        epoch (faster; a lost worker costs the epoch in progress).
    **params
        As :class:`mfsgd.MatrixFactorization`.

    Attributes
    ----------
    history_ : list of dict
        As :class:`mfsgd.MatrixFactorization`'s (``seconds``: the epoch's wall time on the
        workers, as the client waited for it).
    driver_stats_ : dict
        Block tasks submitted, recoveries from lost workers and where they resumed
        ((epoch, sub-epoch), from 0), checkpoint bytes gathered by the client.
    """

    def __init__(self, n_factors=100, n_epochs=60, learning_rate=0.007, regularization=0.08,
                 bias_regularization=None, biased=True, init_std=0.01,
                 learning_rate_schedule="constant", learning_rate_decay=0.1, non_negative=False,
                 early_stopping=False, validation_fraction=0.1, patience=5, tol=1e-4,
                 callbacks=None, n_blocks="auto", n_threads=None, random_state=None,
                 dtype=np.float32, verbose=False, show_progress=False, client=None,
                 checkpoint="sub-epoch"):
        super().__init__(n_factors=n_factors, n_epochs=n_epochs, learning_rate=learning_rate,
                         regularization=regularization,
                         bias_regularization=bias_regularization, biased=biased,
                         init_std=init_std, learning_rate_schedule=learning_rate_schedule,
                         learning_rate_decay=learning_rate_decay, non_negative=non_negative,
                         early_stopping=early_stopping,
                         validation_fraction=validation_fraction, patience=patience, tol=tol,
                         callbacks=callbacks, n_blocks=n_blocks, n_threads=n_threads,
                         random_state=random_state, dtype=dtype, verbose=verbose,
                         show_progress=show_progress)
        self.client = client
        self.checkpoint = checkpoint

    def fit(self, ddf, user="user", item="item", rating="rating", validation=None):
        """Train on the ratings of a dask DataFrame from fresh random factors.

        Parameters
        ----------
        ddf : dask.dataframe.DataFrame
            One row per rating: raw user id, raw item id (integers or strings) and rating.
        user, item, rating : str
            Column names.
        validation : dask.dataframe.DataFrame, optional
            Ratings with the same columns, whose RMSE is recorded in `history_` after every
            epoch and drives early stopping when `early_stopping` is on.  Unlike the training
            ratings, they are gathered on the client (as a :class:`mfsgd.Ratings`), so that
            the RMSE is the local fit's to the bit.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            Before any epoch runs: a missing column, a non-finite rating, a (user, item)
            pair rated twice, no ratings, a closed client, bad parameters, or
            `early_stopping` without `validation`.
        DivergenceError
            As a local fit; the model is left unfitted.

        Notes
        -----
        Before training, the client gathers which items each user rated (item indices, 4
        bytes per rating, no rating values), for ``recommend(exclude_seen=True)`` and
        ``save``; a fit interrupted by Ctrl-C keeps them with its last complete epoch.
        """
        with self._training_call("fit"):
            return self._fit_dask(ddf, user, item, rating, validation)

    def _fit_dask(self, ddf, user, item, rating, validation):
        params = self.checked_params()
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)}, got "
                             f"{self.checkpoint!r}")
        if self.early_stopping and validation is None:
            raise ValueError("early_stopping needs validation= (a dask DataFrame of ratings) "
                             "with DaskMatrixFactorization: it does not hold out a fraction of "
                             "the training ratings")
        client = _pipeline.resolve_client(self.client)
        frame = _pipeline.rating_frame(ddf, user, item, rating)
        valid_frame = None if validation is None else _pipeline.rating_frame(
            validation, user, item, rating, name="validation")
        indexed = _pipeline.index_ratings(client, frame, user, item, rating)
        valid_ratings = None if valid_frame is None else _pipeline.gather_ratings(
            client, valid_frame, user, item, rating)
        rng = np.random.default_rng(self.random_state)
        self._forget_fit()
        self.item_titles_ = None
        state = self._summary_state(indexed, params, rng)
        row_block, col_block, seed = _pipeline.draw_assignment(indexed, state.layout.n_blocks,
                                                               rng)
        blocks = _pipeline.place_blocks(client, indexed, row_block, col_block,
                                        state.layout.n_blocks, seed)
        # As a local fit: the initial factors are drawn after the block assignment.
        for name, array in self._initial_arrays(rng, len(indexed.user_ids),
                                                len(indexed.item_ids), params).items():
            setattr(state, name, array)
        del indexed
        valid = None if valid_ratings is None else indexed_pairs(state, valid_ratings)
        # Before training, so that a model left by an interrupt (at its last complete epoch,
        # as a local fit) also knows which items each user rated: recommend(exclude_seen=True)
        # and save need it.
        state.seen_indptr, state.seen_indices = _gather_seen(client, blocks, state.n_users,
                                                             state.n_items)
        self._placed = (client, blocks)
        self._state = state
        kernel = self._kernel(params)
        backend = self._backend(kernel, params)
        try:
            train_epochs(self, state, kernel, params, params["n_epochs"], valid,
                         self.early_stopping, backend)
        except DivergenceError:
            self._forget_fit()
            raise
        finally:
            self.__dict__.pop("_placed", None)
            self.__dict__.pop("_training_backend", None)
        self.driver_stats_ = dict(backend.stats)
        state.layout = None          # the blocks on the workers are released with it
        return self

    def _summary_state(self, indexed, params, rng):
        """A fresh FitState from the distributed summary of the ratings, with no factor rows
        yet (as a local fit, the factors are drawn after the block assignment); its layout
        says only how many blocks."""
        n_users, n_items = len(indexed.user_ids), len(indexed.item_ids)
        if self.biased and not indexed.sum_is_exact:
            warnings.warn("the sum of these ratings is not exact in float64, so the global "
                          "mean may differ from a local fit's in the last bit", RuntimeWarning,
                          stacklevel=4)
        state = self.state_class(
            rating_range=indexed.rating_range,
            global_mean=indexed.global_mean if self.biased else 0.0,
            **self._initial_arrays(rng, 0, 0, params),
            user_map=IdMap(indexed.user_ids), item_map=IdMap(indexed.item_ids),
            seen_indptr=np.zeros(n_users + 1, dtype=np.int64),
            seen_indices=np.zeros(0, dtype=np.int32), rng=rng)
        if self.n_blocks == "auto":
            n_blocks = auto_n_blocks(n_users, n_items, indexed.n_ratings, state.n_factors,
                                     state.user_factors.itemsize)
        else:
            n_blocks = min(self.n_blocks, n_users, n_items)
        state.layout = DistributedLayout(n_blocks)
        state.user_counts = indexed.user_counts.astype(np.float64)
        state.item_counts = indexed.item_counts.astype(np.float64)
        state.n_train = indexed.n_ratings
        return state

    def _backend(self, kernel, params):
        """The blocks run as tasks on the workers that hold them (see :class:`DaskBackend`)."""
        client, blocks = self._placed
        settings = _blocks.KernelSettings.of(params, self.fit_state_.global_mean,
                                             blocks.n_blocks)
        self._training_backend = DaskBackend(client, blocks, settings, self.checkpoint, kernel,
                                             params)
        return self._training_backend

    @property
    def _driver(self):
        """The driver of the training call in progress (tests inject faults through it)."""
        return self._training_backend.driver

    def partial_fit(self, X, n_epochs=1, validation=None):
        """Not available on a Dask cluster: continue locally with ``to_local().partial_fit``.

        Raises
        ------
        NotImplementedError
            Always.
        """
        raise NotImplementedError("DaskMatrixFactorization trains only from scratch (fit); "
                                  "continue training locally with to_local().partial_fit(...)")

    def to_local(self):
        """The fitted model as a plain :class:`mfsgd.MatrixFactorization`.

        Returns
        -------
        MatrixFactorization
            Holding a copy of this model's fitted state (so later fits of this estimator do
            not change it): recommend, save, partial_fit (which lays its data out again)
            and every other method work on it.
        """
        state = copy.deepcopy(self.fit_state_)
        local = MatrixFactorization(**{name: value for name, value in self.get_params().items()
                                       if name not in ("client", "checkpoint")})
        local.fit_state_ = state
        local.item_titles_ = None
        return local


class DistributedLayout:
    """What the epoch loop reads of a training layout whose blocks live on Dask workers.

    Attributes
    ----------
    n_blocks : int
    schedule : ndarray or None
        The block schedule of the latest epoch (set by the epoch loop).
    """

    def __init__(self, n_blocks):
        self.n_blocks = n_blocks
        self.schedule = None


class DaskBackend:
    """Runs an epoch's blocks as Dask tasks (the backend interface of
    :mod:`mfsgd.training.loop`) through a :class:`~mfsgd.dask._driver.BlockEpochDriver`.

    When an epoch starts, the backend submits it and, when another epoch follows, that one
    too, with the draws the loop will make for it (:func:`mfsgd.training.loop.draw_epoch` on
    a copy of the generator): the workers then go on while the client gathers the epoch's
    last checkpoint and ends the epoch (penalty, validation, callbacks).  The loop's own
    draws are checked against it; an epoch submitted ahead that is not run (training
    stopped) is let go of at ``close``.  Each call waits for the sub-epochs the loop asks
    for (with ``checkpoint="epoch"`` the block errors come at the epoch's end, so the first
    call of an epoch waits for all of it).  ``sync`` writes the checkpointed factor blocks
    into the state.

    Parameters
    ----------
    client : distributed.Client
    blocks : mfsgd.dask._pipeline.BlockSet
    settings : mfsgd.dask._blocks.KernelSettings
    checkpoint : {"sub-epoch", "epoch"}
    kernel : MFKernel
        The learning rate of an epoch submitted ahead.
    params : dict
        The model's checked parameters (``n_epochs``, ``non_negative``).

    Attributes
    ----------
    driver : BlockEpochDriver or None
        The driver of the training call in progress.
    stats : dict
        The driver's statistics of the latest training call.
    """

    def __init__(self, client, blocks, settings, checkpoint, kernel, params):
        self.client, self.blocks = client, blocks
        self.settings, self.checkpoint = settings, checkpoint
        self.kernel, self.params = kernel, params
        self.driver = None
        self.stats = {}
        self._running = False          # an epoch of the loop is submitted
        self._ahead = None             # (blocks, lr, seed) of the epoch submitted ahead
        self._epoch_sse = None         # the block errors of a finished epoch

    def open(self, state):
        """Install the state's factor blocks on the workers that own them."""
        if self.params["non_negative"]:         # as MFKernel.open clamps them
            np.maximum(state.user_factors, 0, out=state.user_factors)
            np.maximum(state.item_factors, 0, out=state.item_factors)
        self.driver = BlockEpochDriver(self.client, self.blocks, self.settings,
                                       _arrays(state), self.checkpoint)

    def run(self, state, blocks, lr, seed):
        """Run (or wait for) the sub-epochs whose blocks are the rows of `blocks`; every
        block's squared error known so far (those of `blocks` among them)."""
        part = state.partial_epoch
        if not self._running:
            self._start(part.blocks, lr, part.seed)
            self._submit_next(state)
        if self._epoch_sse is not None:           # the epoch is done with on the workers
            return self._epoch_sse
        wanted = part.done + len(blocks) if self.checkpoint == "sub-epoch" else len(part.blocks)
        block_sse = self.driver.wait_sub_epochs(wanted)
        if wanted == len(part.blocks):
            self._epoch_sse = block_sse
        return block_sse

    def _start(self, blocks, lr, seed):
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not (np.array_equal(ahead[0], blocks) and ahead[1] == lr
                                      and ahead[2] == seed):
            self.driver.restart_from_checkpoint()        # drawn otherwise: let it go
            ahead = None
        if ahead is None:
            self.driver.submit_epoch(blocks, lr, seed)
        self._running, self._epoch_sse = True, None

    def _submit_next(self, state):
        """Submit the epoch after the one starting, if one follows, with the draws the loop
        will make for it (the generator draws nothing else in between)."""
        if state.epochs_done + 1 < self.params["n_epochs"]:
            blocks, seed = draw_epoch(state.layout.n_blocks, copy.deepcopy(state.rng))
            lr = self.kernel.learning_rate(state.epochs_done + 1)
            self.driver.submit_epoch(blocks, lr, seed)
            self._ahead = (blocks, lr, seed)

    def sync(self, state):
        """Write the checkpointed factor blocks into the state's arrays."""
        self._running = False
        self.driver.write_state(_arrays(state))

    def close(self, state):
        """Release the tasks and row states of this training call.

        When an interrupt stopped the epoch between calls, the state gets the factors of the
        last checkpoint and ``state.partial_epoch`` says how far that is (the whole epoch, if
        the workers finished it), so that the state is consistent with its epoch counters."""
        part = state.partial_epoch
        if part is not None and self.driver is not None:
            if self._epoch_sse is not None:
                part.block_sse[:] = self._epoch_sse
                part.done = len(part.blocks)
            self.driver.write_state(_arrays(state))
        if self.driver is not None:
            self.stats = dict(self.driver.stats)
            self.driver.close()


def _arrays(state):
    return {name: getattr(state, name) for name in state.trained_fields()}


def _block_pairs(layout):
    """(local users, local items) of one block layout, one pair per rating."""
    users = np.repeat(layout.run_user, np.diff(layout.run_ptr))
    return layout.blk, users, layout.items


def _gather_seen(client, blocks, n_users, n_items):
    """The seen-items CSR (indptr int64, indices int32, items sorted within users) of the
    training ratings, built from the block layouts."""
    pairs = client.gather([client.submit(_block_pairs, layout, pure=False)
                           for layout in blocks.layouts.values()])
    keys = []
    for blk, users, items in pairs:
        r, c = divmod(blk, blocks.n_blocks)
        keys.append(blocks.users_of_row[r][users].astype(np.int64) * n_items
                    + blocks.items_of_col[c][items])
    keys = np.sort(np.concatenate(keys))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_items, minlength=n_users), out=indptr[1:])
    return indptr, (keys % n_items).astype(np.int32)
