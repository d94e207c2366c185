"""From a dask DataFrame of raw ids and ratings to laid-out blocks held on workers.

The ratings never reach the client: the client receives the sorted id arrays, the rating
counts per user and per item (one number per id), a handful of per-partition statistics and
per-block counts.  The steps, all Dask tasks:

1. ``scan``: per partition, check the ratings (finite numbers) and ids (integers or
   strings), take the sorted unique ids, count and sum the ratings; unions and sums are
   reduced in a tree of tasks;
2. ``index``: per partition, raw ids to indices into the sorted id arrays (the same indices
   ``Ratings.from_arrays`` gives), and the rating counts per user and item;
3. ``place_blocks`` (after the client has drawn the block assignment): each partition is cut
   by row block, each row block's pieces are gathered on the worker that owns that row block
   and sorted in CSR order, and each block is laid out with the global run offsets.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..training.layout import assign_blocks
from .._validation import as_id_array, as_rating_array
from . import _blocks


def resolve_client(client):
    """The client to use: `client`, else the current dask.distributed client.

    Raises
    ------
    ValueError
        When there is no client, or it is closed.
    TypeError
        When `client` is not a dask.distributed Client.
    """
    import distributed

    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise ValueError("no dask.distributed client: pass client= or create a "
                             "distributed.Client first") from None
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a dask.distributed Client, got {type(client).__name__}")
    if client.status != "running":
        raise ValueError(f"client is not running (status {client.status!r}): it was closed; "
                         "pass a running dask.distributed Client")
    return client


def rating_frame(ddf, user, item, rating, name="ddf"):
    """The three columns of `ddf` that training reads, checked to exist (`name`: the
    argument, for error messages)."""
    import dask.dataframe as dd

    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(f"{name} must be a dask.dataframe.DataFrame, got {type(ddf).__name__}")
    for argument, column in (("user", user), ("item", item), ("rating", rating)):
        if column not in ddf.columns:
            raise ValueError(f"{argument}={column!r} is not a column of {name} "
                             f"(columns: {list(ddf.columns)})")
    return ddf[[user, item, rating]]


def gather_ratings(client, frame, user, item, rating):
    """The ratings of a (small) dask DataFrame from :func:`rating_frame`, gathered on the
    client as a :class:`mfsgd.Ratings` (checked, with its errors, as ``from_dataframe``)."""
    from ..data.ratings import Ratings

    return Ratings.from_dataframe(client.compute(frame).result(), user=user, item=item,
                                  rating=rating, timestamp=False)


def _float32_grain(values):
    """log2 of the largest power of two dividing every nonzero float32 in `values` (None when
    all are zero): every partial sum of them is a multiple of it."""
    bits = values.view(np.uint32).astype(np.int64)
    nonzero = (bits & 0x7FFFFFFF) != 0
    if not nonzero.any():
        return None
    bits = bits[nonzero]
    exponent = (bits >> 23) & 0xFF
    significand = bits & 0x7FFFFF
    normal = exponent > 0
    significand = np.where(normal, significand | 0x800000, significand)
    scale = np.where(normal, exponent - 150, -149)
    lowest_bit = np.frexp((significand & -significand).astype(np.float64))[1] - 1
    return int((scale + lowest_bit).min())


def scan_partition(df, index, user, item, rating):
    """Check one partition and summarise it (None for an empty partition)."""
    if len(df) == 0:
        return None
    users = as_id_array(f"ddf[{user!r}]", df[user].to_numpy())
    items = as_id_array(f"ddf[{item!r}]", df[item].to_numpy())
    values = as_rating_array(f"ddf[{rating!r}] (partition {index})", df[rating].to_numpy())
    return {"users": np.unique(users), "items": np.unique(items), "n": len(values),
            "low": float(values.min()), "high": float(values.max()),
            "sum": float(np.sum(values, dtype=np.float64)),
            "max_abs": float(np.abs(values).max()), "grain": _float32_grain(values)}


def _merge_ids(a, b, what):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        if a.dtype != b.dtype:
            raise TypeError(f"{what} ids have different integer dtypes in different partitions: "
                            f"{a.dtype} and {b.dtype}")
    elif a.dtype.kind != b.dtype.kind:
        raise TypeError(f"{what} ids are integers in some partitions and strings in others")
    return np.union1d(a, b)


def merge_scans(a, b):
    """Combine two partition summaries (either may be None)."""
    if a is None or b is None:
        return b if a is None else a
    grains = [g for g in (a["grain"], b["grain"]) if g is not None]
    return {"users": _merge_ids(a["users"], b["users"], "user"),
            "items": _merge_ids(a["items"], b["items"], "item"),
            "n": a["n"] + b["n"], "low": min(a["low"], b["low"]),
            "high": max(a["high"], b["high"]), "sum": a["sum"] + b["sum"],
            "max_abs": max(a["max_abs"], b["max_abs"]),
            "grain": min(grains) if grains else None}


def index_partition(df, user, item, rating, user_ids, item_ids):
    """(user index int32, item index int32, rating float32) of one partition."""
    if len(df) == 0:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty, np.zeros(0, dtype=np.float32)
    users = as_id_array("users", df[user].to_numpy())
    items = as_id_array("items", df[item].to_numpy())
    values = np.asarray(df[rating].to_numpy(), dtype=np.float32)
    return (np.searchsorted(user_ids, users).astype(np.int32),
            np.searchsorted(item_ids, items).astype(np.int32), values)


def count_partition(mapped, n_users, n_items):
    """Ratings per user and per item in one indexed partition (int64)."""
    users, items, _ = mapped
    return (np.bincount(users, minlength=n_users).astype(np.int64),
            np.bincount(items, minlength=n_items).astype(np.int64))


def add_counts(a, b):
    """Sum of two (user counts, item counts) pairs."""
    return a[0] + b[0], a[1] + b[1]


def _constant(value):
    return value


def graph_constant(client, value):
    """A future of `value` that Dask can recompute: the value sits in the task itself, not
    in a scattered key, so tasks that depend on it can run again after a worker is lost."""
    return client.submit(_constant, value, pure=False)


def tree_reduce(client, futures, combine):
    """Reduce futures pairwise with `combine` in tasks; returns one future."""
    futures = list(futures)
    while len(futures) > 1:
        paired = [client.submit(combine, a, b, pure=False)
                  for a, b in zip(futures[0::2], futures[1::2])]
        if len(futures) % 2:
            paired.append(futures[-1])
        futures = paired
    return futures[0]


@dataclass
class IndexedDataFrame:
    """A rating DataFrame indexed on the workers: id maps and counts on the client."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_counts: np.ndarray        # int64, ratings per user index
    item_counts: np.ndarray
    n_ratings: int
    rating_range: tuple
    rating_sum: float
    sum_is_exact: bool             # float64 sums of these ratings are exact in any order
    mapped: list                   # futures of per-partition (user idx, item idx, rating)

    @property
    def global_mean(self):
        """Mean rating; equal to the local ``np.mean(data, dtype=np.float64)`` bit for bit
        when ``sum_is_exact`` (then every float64 partial sum, in whatever order, is exact)."""
        return self.rating_sum / self.n_ratings


def index_ratings(client, frame, user, item, rating):
    """Scan and index the partitions of `frame` (from :func:`rating_frame`).

    Raises
    ------
    ValueError, TypeError
        Bad ratings or ids (raised by the partition's task, naming the column), or no
        ratings at all.
    """
    partitions = client.compute(frame.to_delayed())
    scans = [client.submit(scan_partition, p, i, user, item, rating, pure=False)
             for i, p in enumerate(partitions)]
    summary = tree_reduce(client, scans, merge_scans).result()
    if summary is None:
        raise ValueError(f"ddf[{rating!r}] (ratings) is empty: no ratings to build a rating "
                         f"set from")
    user_ids, item_ids = summary["users"], summary["items"]
    ids = [graph_constant(client, user_ids), graph_constant(client, item_ids)]
    mapped = [client.submit(index_partition, p, user, item, rating, ids[0], ids[1], pure=False)
              for p in partitions]
    counts = [client.submit(count_partition, m, len(user_ids), len(item_ids), pure=False)
              for m in mapped]
    user_counts, item_counts = tree_reduce(client, counts, add_counts).result()
    del partitions, scans, counts
    n = summary["n"]
    grain = summary["grain"]
    exact = grain is None or n * summary["max_abs"] * (1 + 2.0**-40) <= math.ldexp(1.0, 53 + grain)
    return IndexedDataFrame(user_ids, item_ids, user_counts, item_counts, n,
                            (summary["low"], summary["high"]), summary["sum"], exact, mapped)


@dataclass
class BlockSet:
    """The laid-out blocks of a fit, each held by one worker, and how they index the model.

    ``layouts[blk]`` is the future of block ``blk = r * n_blocks + c``; ``users_of_row[r]``
    (ascending) are the global indices of row block r's users, so that local user j of the
    block is ``users_of_row[r][j]``; likewise ``items_of_col[c]``.  ``block_ptr`` and
    ``rating_start`` are the whole layout's run and rating offsets of every block.
    """

    n_blocks: int
    layouts: dict
    owners: dict
    users_of_row: list
    items_of_col: list
    block_ptr: np.ndarray
    rating_start: np.ndarray

    @property
    def n_runs(self):
        """Runs in the whole layout."""
        return int(self.block_ptr[-1])


def positions(block_of, n_blocks):
    """(members of each block in ascending order, position of every id within its block)."""
    members = [np.flatnonzero(block_of == b) for b in range(n_blocks)]
    local = np.empty(len(block_of), dtype=np.int32)
    for ids in members:
        local[ids] = np.arange(len(ids), dtype=np.int32)
    return members, local


def _scheduler_workers(dask_scheduler):
    return sorted(dask_scheduler.workers)


def worker_addresses(client):
    """Addresses of the workers connected now, sorted (asked of the scheduler itself: the
    client's cached view can still list a worker that has just died)."""
    return client.run_on_scheduler(_scheduler_workers)


def place_blocks(client, indexed, row_block, col_block, n_blocks, seed, owners=None):
    """Lay out every block on the worker that owns its row block.

    Parameters
    ----------
    client : distributed.Client
    indexed : IndexedDataFrame
    row_block, col_block : ndarray of int32
        The block of every user and item (``balanced_blocks`` drawn on the client).
    n_blocks : int
    seed : int
        The layout seed (the integer ``build_layout`` draws after the block assignment).
    owners : dict, optional
        Worker address of each row block; default: row block r on worker r mod W.

    Returns
    -------
    BlockSet

    Raises
    ------
    ValueError
        When a (user, item) pair is rated more than once (naming the raw ids).
    """
    users_of_row, user_local = positions(row_block, n_blocks)
    items_of_col, item_local = positions(col_block, n_blocks)
    if owners is None:
        workers = worker_addresses(client)
        owners = {r: workers[r % len(workers)] for r in range(n_blocks)}
    maps = [graph_constant(client, a) for a in (row_block, col_block, user_local, item_local)]
    splits = [client.submit(_blocks.split_partition, m, *maps, n_blocks, pure=False)
              for m in indexed.mapped]
    groups = []
    for r in range(n_blocks):
        pieces = [client.submit(_blocks.piece, s, r, pure=False) for s in splits]
        groups.append(client.submit(_blocks.build_row_group, r, n_blocks,
                                    max(len(c) for c in items_of_col), *pieces,
                                    workers=[owners[r]], allow_other_workers=True, pure=False))
    summaries = client.gather([client.submit(_blocks.row_group_summary, g, pure=False)
                               for g in groups])
    ratings_per_block = np.concatenate([s[0] for s in summaries])
    runs_per_block = np.concatenate([s[1] for s in summaries])
    for r, (_, _, duplicate) in enumerate(summaries):
        if duplicate is not None:
            c, user, item = duplicate
            raise ValueError(
                f"more than one rating for (user {indexed.user_ids[users_of_row[r][user]].item()!r}, "
                f"item {indexed.item_ids[items_of_col[c][item]].item()!r}); aggregate "
                f"duplicates first (e.g. ddf.groupby([user, item]).mean())")
    block_ptr = np.zeros(n_blocks * n_blocks + 1, dtype=np.int64)
    np.cumsum(runs_per_block, out=block_ptr[1:])
    rating_start = np.zeros(n_blocks * n_blocks, dtype=np.int64)
    np.cumsum(ratings_per_block[:-1], out=rating_start[1:])
    layouts = {}
    for r in range(n_blocks):
        for c in range(n_blocks):
            blk = r * n_blocks + c
            layouts[blk] = client.submit(_blocks.layout_block, groups[r], c, n_blocks,
                                         int(block_ptr[blk]), seed, workers=[owners[r]],
                                         allow_other_workers=True, pure=False)
    return BlockSet(n_blocks, layouts, dict(owners), users_of_row, items_of_col, block_ptr,
                    rating_start)


def draw_assignment(indexed, n_blocks, rng):
    """The block assignment a local fit draws (:func:`mfsgd.training.layout.assign_blocks`),
    drawn on the client: (row block of every user, column block of every item, layout seed)."""
    return assign_blocks(indexed.user_counts, indexed.item_counts, n_blocks, rng)
