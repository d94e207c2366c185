"""Set-up of training: a model's index space, the training layout, held-out ratings, new data."""
import hashlib

import numpy as np

from .._kernels import _sgd
from ..data._csr import IndexedRatings, from_index_triplets, take
from .layout import auto_n_blocks, build_layout
from .seen import merged_seen, seen_from_ratings


def lay_out(state, train, n_blocks, rng):
    """Lay the training ratings (in the state's index space) out for the kernel.

    Sets ``state.layout``, the per-row rating counts that weight the penalty and
    ``state.n_train``.

    Parameters
    ----------
    state : FitState
    train : Ratings or IndexedRatings
        Rows and columns are the state's user and item rows.
    n_blocks : int or "auto"
        The model's parameter; at most the number of users and of items.
    rng : numpy.random.Generator
        Draws the block assignment and the layout seed (see :mod:`mfsgd.training.layout`).
    """
    n_blocks = (auto_n_blocks(train.n_users, train.n_items, len(train), state.n_factors,
                              state.user_factors.itemsize)
                if n_blocks == "auto" else min(n_blocks, train.n_users, train.n_items))
    item_counts = _sgd.count_items(np.ascontiguousarray(train.indices, dtype=np.int32),
                                   train.n_items)
    state.layout = build_layout(train, n_blocks, rng, item_counts)
    state.user_counts = np.diff(train.indptr).astype(np.float64)
    state.item_counts = item_counts.astype(np.float64)
    state.n_train = len(train)


def adopt(state, train, n_blocks, draw, fingerprint_):
    """Make `train` (raw ids) the state's training data, growing the state for new ids.

    New users and items get rows (:meth:`FitState.grow`, with `draw` for their factors);
    the rating range widens to cover `train`; the layout is rebuilt with the state's generator;
    the seen-items index gains `train`'s pairs.
    """
    users, items, values = train.index_arrays()
    state.user_map, n_new_users = state.user_map.extended(train.user_ids)
    state.item_map, n_new_items = state.item_map.extended(train.item_ids)
    state.grow(n_new_users, n_new_items, draw)
    model_space = from_index_triplets(state.user_map.lookup(train.user_ids)[users],
                                      state.item_map.lookup(train.item_ids)[items], values,
                                      len(state.user_map), len(state.item_map))
    low, high = model_space.rating_range
    state.rating_range = (min(low, state.rating_range[0]), max(high, state.rating_range[1]))
    lay_out(state, model_space, n_blocks, state.rng)
    state.seen_indptr, state.seen_indices = merged_seen(
        state.seen_indptr, state.seen_indices, *seen_from_ratings(model_space))
    state.fingerprint = fingerprint_


def hold_out(train, fraction, rng):
    """Split off a random `fraction` of the training ratings for early stopping.

    Returns the remaining training ratings (IndexedRatings in the same index space) and the
    held-out (user index, item index, rating) triplets."""
    n = len(train)
    n_out = max(1, int(round(n * fraction)))
    if n_out >= n:
        raise ValueError(f"validation_fraction={fraction} leaves no training ratings out of {n}")
    order = rng.permutation(n)
    users, items, values = train.index_arrays()
    held = np.sort(order[:n_out])
    held_pairs = (users[held].astype(np.int64), items[held].astype(np.int64), values[held])
    return take(train, order[n_out:]), held_pairs


def indexed_pairs(state, ratings):
    """(user row, item row, rating) of a rating set in the state's index space (-1: unknown)."""
    users, items, values = ratings.index_arrays()
    return (state.user_map.lookup(ratings.user_ids, "users")[users],
            state.item_map.lookup(ratings.item_ids, "items")[items], values)


def fingerprint(ratings):
    """Digest of a rating set's CSR arrays and ids, to recognise the same training data."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (ratings.indptr, ratings.indices, ratings.data):
        digest.update(np.ascontiguousarray(array).data)
    if not isinstance(ratings, IndexedRatings):
        for ids in (ratings.user_ids, ratings.item_ids):
            digest.update(np.ascontiguousarray(ids).data)
    digest.update(f"{ratings.n_users},{ratings.n_items}".encode())
    return digest.hexdigest()
