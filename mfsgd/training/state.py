"""The fitted state of a factor model: everything ``fit`` learns or needs to continue.

A model holds one :class:`FitState` (``model.fit_state_``) and nothing else that training
produced; training, prediction, recommendation and persistence all read and write this one
object.  Its fields are declared once, below, with what the rest of the package needs to know
about each, in the field's metadata:

- ``saved``: how :mod:`mfsgd.persistence` stores the field (the codec name); fields without it
  are not saved (the training layout and the counters derived from the training data, which
  ``partial_fit`` rebuilds from the data it is given);
- ``rows``: ``"user"`` or ``"item"`` for arrays with one entry per user or item row, and
  ``grow``: how :meth:`FitState.grow` extends them for new ids (``"draw"``: fresh initial
  factors from the model; ``"zeros"``; ``"ones"``: adagrad sums, which are empty when unused
  and stay so; ``"indptr"``: a CSR row pointer gains empty rows);
- ``trained``: the arrays SGD updates, which early stopping and a diverging ``partial_fit``
  copy and restore as a whole.

So a model with more state (SVD++'s implicit factors) subclasses FitState and declares its
fields the same way; persistence, growing and snapshots then cover them without other changes.
"""
from dataclasses import dataclass, field, fields, replace
from typing import Optional

import numpy as np

from .._kernels import _sgd
from ..data._idmap import IdMap


def _meta(**metadata):
    return {"metadata": metadata}


@dataclass
class PartialEpoch:
    """An epoch in progress: its block schedule and seed, the sub-epochs done, their blocks'
    squared errors and the kernel seconds spent so far.

    ``blocks[s]`` lists the blocks of sub-epoch ``s`` (see
    :func:`mfsgd.training.layout.block_schedule`).
    """

    blocks: np.ndarray
    seed: int
    block_sse: np.ndarray
    done: int = 0
    seconds: float = 0.0

    def copy(self):
        """An independent copy."""
        return replace(self, blocks=self.blocks.copy(), block_sse=self.block_sse.copy())


@dataclass(eq=False)
class FitState:
    """Everything a fitted factor model holds: learned arrays, id maps, counters, training set-up.

    Rows are model indices: row ``r`` of ``user_factors`` belongs to the user whose raw id is
    ``user_map.raw(r)``.  The arrays may be padded views during training (see
    :mod:`mfsgd.training.layout`); outside training they are plain C-contiguous arrays.

    Attributes
    ----------
    user_factors, item_factors : ndarray, shape (n_users, k), (n_items, k)
    user_bias, item_bias : ndarray, shape (n_users,), (n_items,)
        Zeros for an unbiased model.
    user_grad_sq, item_grad_sq : ndarray
        Adagrad's squared-gradient sums per row (starting at 1), or empty arrays without adagrad.
    global_mean : float
        The mean training rating (0 for an unbiased model).
    rating_range : (float, float)
        Smallest and largest training rating; predictions are clipped to it.
    user_map, item_map : IdMap
        Raw ids <-> rows.
    seen_indptr, seen_indices : ndarray of int64, int32
        CSR of the items each user rated in training (sorted rows), for ``exclude_seen``.
    rng : numpy.random.Generator
        The model's generator: initial factors of new rows, layouts, epoch schedules and seeds.
    epochs_done : int
        Complete epochs trained.
    best_epoch : int or None
        With early stopping, the epoch whose factors the state holds.
    history : list of dict
        One record per complete epoch (see ``MatrixFactorization.history_``).
    layout : BlockLayout or None
        The training ratings laid out for the kernel; None after ``load`` (rebuilt by
        ``partial_fit`` from its data).
    fingerprint : str or None
        Digest of the rating set `layout` was built from (see
        :func:`mfsgd.training.setup.fingerprint`).
    user_counts, item_counts : ndarray of float64 or None
        Training ratings per row, the weights of the penalty.
    n_train : int
        Number of training ratings in `layout`.
    partial_epoch : PartialEpoch or None
        The epoch an interrupt stopped after some of its sub-epochs.
    """

    user_factors: np.ndarray = field(**_meta(saved="factors", rows="user", grow="draw",
                                             trained=True))
    item_factors: np.ndarray = field(**_meta(saved="factors", rows="item", grow="draw",
                                             trained=True))
    user_bias: np.ndarray = field(**_meta(saved="values", rows="user", grow="zeros",
                                          trained=True))
    item_bias: np.ndarray = field(**_meta(saved="values", rows="item", grow="zeros",
                                          trained=True))
    user_grad_sq: np.ndarray = field(**_meta(saved="values", rows="user", grow="ones",
                                             trained=True))
    item_grad_sq: np.ndarray = field(**_meta(saved="values", rows="item", grow="ones",
                                             trained=True))
    global_mean: float = field(**_meta(saved="float64"))
    rating_range: tuple = field(**_meta(saved="range"))
    user_map: IdMap = field(**_meta(saved="ids", member="user_ids", rows_of="user_bias"))
    item_map: IdMap = field(**_meta(saved="ids", member="item_ids", rows_of="item_bias"))
    seen_indptr: np.ndarray = field(**_meta(saved="int64", rows="user", grow="indptr"))
    seen_indices: np.ndarray = field(**_meta(saved="int32"))
    epochs_done: int = field(default=0, **_meta(saved="state_json"))
    best_epoch: Optional[int] = field(default=None, **_meta(saved="state_json"))
    rng: np.random.Generator = field(default=None, **_meta(saved="state_json", key="rng_state"))
    history: list = field(default_factory=list, **_meta(saved="json", member="history_json"))
    layout: object = None
    fingerprint: Optional[str] = None
    user_counts: Optional[np.ndarray] = None
    item_counts: Optional[np.ndarray] = None
    n_train: int = 0
    partial_epoch: Optional[PartialEpoch] = None

    # ------------------------------------------------------------------ the declared fields
    @classmethod
    def saved_fields(cls):
        """The fields a model file stores, in declaration order (dataclass Field objects)."""
        return [f for f in fields(cls) if "saved" in f.metadata]

    @classmethod
    def trained_fields(cls):
        """Names of the arrays SGD updates."""
        return [f.name for f in fields(cls) if f.metadata.get("trained")]

    @classmethod
    def check_saved(cls, arrays):
        """Check the saved fields that FitState does not declare (none here); a subclass with
        more fields overrides it and raises ``mfsgd.persistence._checks.FieldError``."""

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self):
        """Number of user rows."""
        return len(self.user_bias)

    @property
    def n_items(self):
        """Number of item rows."""
        return len(self.item_bias)

    @property
    def n_factors(self):
        """Number of factors k."""
        return self.user_factors.shape[1]

    # ------------------------------------------------------------------ prediction
    def predict_rows(self, users, items, n_threads=1):
        """Predicted ratings of (user row, item row) pairs, clipped to `rating_range`.

        A row of -1 is unknown: it adds neither factors nor a bias, so an unknown user gets
        the global mean plus the item's bias (the cold-start rule of the whole package).
        """
        out = np.empty(len(users), dtype=np.float64)
        _sgd.predict(self.user_factors, self.item_factors, self.user_bias, self.item_bias,
                     self.global_mean, np.ascontiguousarray(users, dtype=np.int64),
                     np.ascontiguousarray(items, dtype=np.int64), out, n_threads)
        return np.clip(out, *self.rating_range, out=out)

    def rmse(self, pairs, n_threads=1):
        """RMSE of the predictions on (user rows, item rows, ratings)."""
        users, items, values = pairs
        error = self.predict_rows(users, items, n_threads) - values
        return float(np.sqrt(np.mean(np.square(error))))

    # ------------------------------------------------------------------ whole-state operations
    def trained_arrays(self, copy):
        """{name: array} of the arrays SGD updates (copies when `copy`)."""
        return {name: getattr(self, name).copy() if copy else getattr(self, name)
                for name in self.trained_fields()}

    def set_arrays(self, arrays):
        """Replace arrays by name (the inverse of :meth:`trained_arrays`)."""
        for name, value in arrays.items():
            setattr(self, name, value)

    def snapshot(self):
        """What a diverging ``partial_fit`` returns to: trained arrays, counters, history length,
        the generator's state and the interrupted epoch."""
        return (self.trained_arrays(copy=True), self.epochs_done, len(self.history),
                self.rng.bit_generator.state,
                None if self.partial_epoch is None else self.partial_epoch.copy())

    def restore(self, snapshot):
        """Return to a :meth:`snapshot`."""
        arrays, epochs_done, n_records, rng_state, partial_epoch = snapshot
        self.set_arrays(arrays)
        self.epochs_done = epochs_done
        del self.history[n_records:]
        self.rng.bit_generator.state = rng_state
        self.partial_epoch = partial_epoch

    def grow(self, n_new_users, n_new_items, draw):
        """Add rows for new users and items to every per-row field (see the module docstring).

        Parameters
        ----------
        n_new_users, n_new_items : int
        draw : callable
            ``draw(n)`` returns `n` fresh initial factor rows, shape (n, k), in the model's
            dtype; it is called once per ``grow="draw"`` field, users first, in declaration
            order (so the random draws come in a fixed order).
        """
        for side, n_new in (("user", n_new_users), ("item", n_new_items)):
            if not n_new:
                continue
            for f in fields(self):
                if f.metadata.get("rows") != side:
                    continue
                setattr(self, f.name, _grown(getattr(self, f.name), f.metadata["grow"], n_new,
                                             draw))


def _grown(array, rule, n_new, draw):
    if rule == "draw":
        return np.vstack([array, draw(n_new)])
    if rule == "zeros":
        return np.concatenate([array, np.zeros(n_new, array.dtype)])
    if rule == "ones":
        return np.concatenate([array, np.ones(n_new, array.dtype)]) if len(array) else array
    if rule == "indptr":
        return np.concatenate([array, np.full(n_new, array[-1], dtype=np.int64)])
    raise ValueError(f"unknown grow rule {rule!r}")
