"""One epoch of the blocked schedule as Dask tasks, driven from the client.

Sub-epoch s runs its B blocks as B tasks, block (r, c) on the worker that holds its layout
(the owner of row block r).  A task takes the current factor blocks of row block r and
column block c and returns their updated copies; only those move between workers, and row
block r's factors stay on its owner, so in practice only item factor blocks travel.

Fault tolerance.  After submitting sub-epoch s the client gathers the factor blocks that
sub-epoch s - 1 produced (while s runs) and keeps them as the checkpoint (or, with
``checkpoint="epoch"``, only those of each epoch's last sub-epoch).  When the scheduler
reports a removed worker, the driver cancels its factor futures (so that Dask does not
recompute them through the whole chain of earlier sub-epochs), scatters the checkpoint to
the workers now present and runs again from the sub-epoch after it.  The layouts are left to
Dask: a lost layout is recomputed from the task graph that built it.  Every task is a pure
function of its inputs, so the replayed sub-epochs give the same bytes.
"""
import threading
import time

import numpy as np

from . import _blocks
from ._pipeline import worker_addresses

POLL_SECONDS = 0.05
LOST_EVENT_SECONDS = 5.0
WORKERS_BACK_SECONDS = 60.0
CHECKPOINTS = ("sub-epoch", "epoch")


class WorkerLost(RuntimeError):
    """A worker left the cluster while the epoch ran (handled inside the driver)."""


class BlockEpochDriver:
    """Run epochs of the blocked SGD schedule over Dask futures.

    Parameters
    ----------
    client : distributed.Client
    blocks : mfsgd.dask._pipeline.BlockSet
    settings : mfsgd.dask._blocks.KernelSettings
    state : dict of ndarray
        The whole model's ``user_factors``, ``item_factors``, ``user_bias``, ``item_bias``,
        ``user_grad_sq`` and ``item_grad_sq`` (accumulators empty without adagrad), in
        global index order; they are split into blocks and scattered to the owners.
    checkpoint : {"sub-epoch", "epoch"}, default="sub-epoch"
        How often the client gathers the factor blocks: after every sub-epoch (a lost worker
        costs at most the sub-epochs in flight), or only at the end of each epoch (a lost
        worker replays the epoch; the client receives the model once per epoch instead of
        once per sub-epoch).

    Attributes
    ----------
    before_sub_epoch : callable or None
        Called as ``before_sub_epoch(epoch, s)`` before sub-epoch ``s`` of the driver's
        ``epoch``-th call of :meth:`run_epoch` (from 0) is submitted.
    stats : dict
        ``block_tasks`` submitted, ``recoveries``, ``resumed_at`` (epoch, sub-epoch) of each
        recovery, ``checkpoint_bytes`` gathered.
    """

    def __init__(self, client, blocks, settings, state, checkpoint="sub-epoch"):
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)}, got {checkpoint!r}")
        self.checkpoint = checkpoint
        self.client = client
        self.blocks = blocks
        self.settings = settings
        self.n_blocks = blocks.n_blocks
        self.owners = dict(blocks.owners)
        self.before_sub_epoch = None
        self.stats = {"block_tasks": 0, "recoveries": 0, "resumed_at": [],
                      "checkpoint_bytes": 0}
        self._epochs = 0
        self._lost = threading.Event()
        self._rows = [self._row_slice(state, r) for r in range(self.n_blocks)]
        self._cols = [self._col_slice(state, c) for c in range(self.n_blocks)]
        self._row_futures = self._col_futures = None
        self._scatter_checkpoint()
        client.subscribe_topic("all", self._on_event)

    # ------------------------------------------------------------------ state
    def _row_slice(self, state, r):
        rows = self.blocks.users_of_row[r]
        grad = state["user_grad_sq"]
        return (np.ascontiguousarray(state["user_factors"][rows]), state["user_bias"][rows],
                grad[rows] if len(grad) else grad[:0].copy())

    def _col_slice(self, state, c):
        cols = self.blocks.items_of_col[c]
        grad = state["item_grad_sq"]
        return (np.ascontiguousarray(state["item_factors"][cols]), state["item_bias"][cols],
                grad[cols] if len(grad) else grad[:0].copy())

    def write_state(self, state):
        """Copy the checkpointed factor blocks into the whole-model arrays of `state`."""
        for rows, (factors, bias, grad) in zip(self.blocks.users_of_row, self._rows):
            state["user_factors"][rows] = factors
            state["user_bias"][rows] = bias
            if len(grad):
                state["user_grad_sq"][rows] = grad
        for cols, (factors, bias, grad) in zip(self.blocks.items_of_col, self._cols):
            state["item_factors"][cols] = factors
            state["item_bias"][cols] = bias
            if len(grad):
                state["item_grad_sq"][cols] = grad

    def _scatter_checkpoint(self):
        """Scatter the checkpoint to the owners, moving row blocks of departed workers to
        the least loaded live ones; retried while workers come and go."""
        deadline = time.monotonic() + WORKERS_BACK_SECONDS
        while True:
            live = worker_addresses(self.client)
            if live:
                for r, owner in list(self.owners.items()):
                    if owner not in live:
                        load = {w: sum(o == w for o in self.owners.values()) for w in live}
                        self.owners[r] = min(live, key=lambda w: (load[w], w))
                try:
                    scatter = self.client.scatter
                    self._row_futures = [scatter(self._rows[r], workers=[self.owners[r]],
                                                 hash=False) for r in range(self.n_blocks)]
                    self._col_futures = [scatter(self._cols[c], workers=[self.owners[c]],
                                                 hash=False) for c in range(self.n_blocks)]
                    return
                except (KeyError, OSError):
                    pass            # a chosen worker left in the meantime
            if time.monotonic() > deadline:
                raise RuntimeError(f"no Dask worker took the factor blocks within "
                                   f"{WORKERS_BACK_SECONDS} s after losing a worker")
            time.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------ failures
    def _on_event(self, event):
        _, message = event
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            self._lost.set()

    def _wait(self, futures):
        """Wait for `futures`; raise WorkerLost as soon as a worker has left."""
        import distributed

        while True:
            if self._lost.is_set():
                raise WorkerLost()
            try:
                distributed.wait(futures, timeout=POLL_SECONDS)
                break
            except TimeoutError:
                continue
            except Exception:
                # Futures whose scattered inputs died with a worker are cancelled ("lost
                # dependencies"); the scheduler's remove-worker event may come just after.
                self._raise_if_worker_lost()
                raise
        if any(f.status != "finished" for f in futures):
            self._raise_if_worker_lost()
            for future in futures:
                future.result()         # raises the task's own error

    def _raise_if_worker_lost(self, patience=LOST_EVENT_SECONDS):
        if self._lost.wait(patience):
            raise WorkerLost()

    def _recover(self, progress):
        for futures in (self._row_futures, self._col_futures):
            self.client.cancel([f for f in futures if f is not None])
        self._lost.clear()
        self.stats["recoveries"] += 1
        self.stats["resumed_at"].append((self._epochs, progress))
        self._scatter_checkpoint()

    # ------------------------------------------------------------------ the epoch
    def run_epoch(self, schedule, lr, seed):
        """Run one epoch: the B sub-epochs of `schedule` with learning rate `lr` and seed.

        Returns
        -------
        ndarray of float64, shape (n_blocks ** 2,)
            Each block's sum of squared errors (add them in index order for the epoch's).
        """
        block_sse = np.zeros(self.n_blocks * self.n_blocks)
        progress = [0]
        while True:
            try:
                self._sub_epochs(schedule, lr, seed, progress, block_sse)
                break
            except WorkerLost:
                self._recover(progress[0])
        self._epochs += 1
        return block_sse

    def _sub_epochs(self, schedule, lr, seed, progress, block_sse):
        client, n_blocks = self.client, self.n_blocks
        pending = None
        for s in range(progress[0], n_blocks):
            if self.before_sub_epoch is not None:
                self.before_sub_epoch(self._epochs, s)
            outputs = {}
            for blk in schedule[s]:
                r, c = divmod(int(blk), n_blocks)
                out = client.submit(_blocks.run_block, self.blocks.layouts[int(blk)],
                                    self._row_futures[r], self._col_futures[c], self.settings,
                                    lr, seed, workers=[self.owners[r]],
                                    allow_other_workers=True, pure=False)
                self._row_futures[r] = out
                # Pinned (loosely) to the owner too: left free, the scheduler may run it on an
                # idle worker and drag the row state along with the column state.
                self._col_futures[c] = client.submit(_blocks.column_state, out,
                                                     workers=[self.owners[r]],
                                                     allow_other_workers=True, pure=False)
                outputs[int(blk)] = out
                self.stats["block_tasks"] += 1
            if self.checkpoint == "sub-epoch":
                if pending is not None:
                    self._checkpoint(pending, progress, block_sse)
                pending = (s, outputs, {})
            else:
                # Only the last sub-epoch's outputs hold the epoch's state; of the others
                # the client needs the errors alone.
                sses = dict(pending[2]) if pending else {}
                for blk, out in (pending[1] if pending else {}).items():
                    sses[blk] = client.submit(_blocks.block_error, out,
                                              workers=[self.owners[blk // n_blocks]],
                                              allow_other_workers=True, pure=False)
                pending = (s, outputs, sses)
        if pending is not None:
            self._checkpoint(pending, progress, block_sse)

    def _checkpoint(self, pending, progress, block_sse):
        """Gather sub-epoch `s`'s block outputs (every row and column block's state) and the
        errors of earlier blocks not gathered yet; the state becomes the checkpoint."""
        s, outputs, sses = pending
        futures = list(outputs.values()) + list(sses.values())
        self._wait(futures)
        try:
            values = self.client.gather(futures)
        except Exception:
            self._raise_if_worker_lost()
            raise
        if self._lost.is_set():
            raise WorkerLost()
        for blk, sse in zip(sses, values[len(outputs):]):
            block_sse[blk] = sse
        rows, cols = list(self._rows), list(self._cols)
        for blk, output in zip(outputs, values[:len(outputs)]):
            r, c = divmod(blk, self.n_blocks)
            rows[r], cols[c] = output.row, output.col
            block_sse[blk] = output.sse
        self._rows, self._cols = rows, cols
        self.stats["checkpoint_bytes"] += sum(a.nbytes for output in values[:len(outputs)]
                                              for a in output.row + output.col)
        progress[0] = s + 1

    def close(self):
        """Release the factor futures and stop listening to scheduler events."""
        try:
            self.client.unsubscribe_topic("all")
        except Exception:  # noqa: BLE001 - the client may already be closing
            pass
        self._row_futures = self._col_futures = None
