"""Epochs of the blocked schedule as Dask tasks, driven from the client.

Sub-epoch s runs its B blocks as B tasks, block (r, c) on the worker that owns row block r.
Row block r's state (user factors, biases, accumulators) lives in its owner's memory and the
block tasks update it in place (:mod:`mfsgd.dask._blocks`); a block task returns only the
column block's new state, which the next task of that column takes directly, on whichever
worker it runs.  So one task per block, and only item factor blocks travel.

A whole epoch's tasks are submitted at once, their order expressed by dependencies (the
row's previous task, the column's previous output), and the epoch loop waits for the sub-epochs it asks for
(:mod:`mfsgd.training.loop`).  Between epochs the workers wait while the client ends the
epoch (penalty, validation, callbacks) and draws the next one.

Checkpoints.  Block tasks asked for a checkpoint copy their row state; a small task on the
owner hands that copy to the client, which gathers it with the column states.  With
``checkpoint="sub-epoch"`` every sub-epoch is checkpointed, with ``"epoch"`` only the last
of each epoch (which the client needs anyway for the objective and the callbacks).  When
the scheduler reports a removed worker, the driver lets go of every task in flight, installs
the checkpoint on the workers now present (under a new generation, so that a stale task
still running writes where nobody reads) and submits again from the sub-epoch after it.
The layouts are left to Dask: a lost layout is recomputed from the task graph that built
it.  Every block task is a pure function of its inputs and of the row state it is given, so
the replayed sub-epochs give the same bytes.
"""
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import _blocks
from ._pipeline import worker_addresses

POLL_SECONDS = 0.05
LOST_EVENT_SECONDS = 5.0
WORKERS_BACK_SECONDS = 60.0
CHECKPOINTS = ("sub-epoch", "epoch")


class WorkerLost(RuntimeError):
    """A worker left the cluster while an epoch ran (handled inside the driver)."""


@dataclass
class _Epoch:
    """One submitted epoch: its draws, the futures of its sub-epochs, what is checkpointed."""

    number: int
    schedule: np.ndarray
    lr: float
    seed: int
    block_sse: np.ndarray
    done: int = 0                                    # sub-epochs checkpointed
    pending: deque = field(default_factory=deque)    # (s, outputs, snapshots, errors)


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
        global index order; they are split into blocks and installed on the owners.
    checkpoint : {"sub-epoch", "epoch"}, default="sub-epoch"
        Which states the client gathers and resumes from when a worker is lost: every
        sub-epoch's, or each epoch's last (a lost worker then costs the epoch in progress;
        the client receives the model once per epoch instead of once per sub-epoch).

    Attributes
    ----------
    after_sub_epoch : callable or None
        Called as ``after_sub_epoch(epoch, s)`` when sub-epoch ``s`` of the driver's
        ``epoch``-th epoch (from 0) is checkpointed (sub-epoch checkpoints) or completes.
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
        self.after_sub_epoch = None
        self.stats = {"block_tasks": 0, "recoveries": 0, "resumed_at": [],
                      "checkpoint_bytes": 0}
        self.token = uuid.uuid4().hex
        self._generation = 0
        self._epochs = deque()
        self._next_number = 0
        self._lost = threading.Event()
        self._rows = [self._row_slice(state, r) for r in range(self.n_blocks)]
        self._cols = [self._col_slice(state, c) for c in range(self.n_blocks)]
        self._row_after = self._col_futures = None
        client.subscribe_topic("all", self._on_event)
        self._install_checkpoint()

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

    def _install_checkpoint(self):
        """Install the checkpoint on the owners under a new generation, moving row blocks of
        departed workers to the least loaded live ones; retried while workers come and go."""
        deadline = time.monotonic() + WORKERS_BACK_SECONDS
        self._generation += 1
        client = self.client
        while True:
            live = worker_addresses(client)
            if live:
                for r, owner in list(self.owners.items()):
                    if owner not in live:
                        load = {w: sum(o == w for o in self.owners.values()) for w in live}
                        self.owners[r] = min(live, key=lambda w: (load[w], w))
                try:
                    rows = [client.scatter(self._rows[r], workers=[self.owners[r]], hash=False)
                            for r in range(self.n_blocks)]
                    self._row_after = [
                        client.submit(_blocks.install_row, self.token, self._generation, r,
                                      rows[r], workers=[self.owners[r]],
                                      allow_other_workers=False, pure=False)
                        for r in range(self.n_blocks)]
                    self._col_futures = [client.scatter(self._cols[c], workers=[self.owners[c]],
                                                        hash=False)
                                         for c in range(self.n_blocks)]
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

    def _recover(self):
        """Let go of everything in flight, install the checkpoint again and resubmit every
        queued epoch from its first sub-epoch not checkpointed."""
        futures = list(self._row_after) + list(self._col_futures)
        for epoch in self._epochs:
            for _, outputs, snapshots, errors in epoch.pending:
                futures += list(outputs.values()) + list(snapshots.values()) + list(errors.values())
            epoch.pending.clear()
        _release(futures)
        self._lost.clear()
        self.stats["recoveries"] += 1
        first = self._epochs[0]
        self.stats["resumed_at"].append((first.number, first.done))
        self._install_checkpoint()
        for epoch in self._epochs:
            self._submit(epoch, epoch.done)

    # ------------------------------------------------------------------ epochs
    def submit_epoch(self, schedule, lr, seed):
        """Submit one epoch (the B sub-epochs of `schedule` with learning rate `lr` and seed)
        after those already submitted; :meth:`finish_epoch` returns its errors."""
        epoch = _Epoch(self._next_number, np.asarray(schedule), lr, seed,
                       np.zeros(self.n_blocks * self.n_blocks))
        self._next_number += 1
        self._epochs.append(epoch)
        self._submit(epoch, 0)

    def _submit(self, epoch, first):
        client, n_blocks = self.client, self.n_blocks
        snapshot_every = self.checkpoint == "sub-epoch"
        unreported = {}              # row block -> [(block, output)] whose error is not asked
        for s in range(first, n_blocks):
            snapshot = snapshot_every or s == n_blocks - 1
            outputs, snapshots, errors = {}, {}, {}
            for blk in epoch.schedule[s]:
                blk = int(blk)
                r, c = divmod(blk, n_blocks)
                owner = [self.owners[r]]
                tag = (epoch.number, s) if snapshot else None
                out = client.submit(_blocks.run_block, self.blocks.layouts[blk],
                                    self._row_after[r], self._col_futures[c], self.token,
                                    self._generation, self.settings, epoch.lr, epoch.seed,
                                    tag, workers=owner, allow_other_workers=False, pure=False)
                self._row_after[r] = self._col_futures[c] = out
                self.stats["block_tasks"] += 1
                if snapshot:
                    outputs[blk] = out
                    snapshots[r] = client.submit(_blocks.take_snapshot, out, self.token,
                                                 self._generation, r, tag, workers=owner,
                                                 allow_other_workers=False, pure=False)
                else:
                    unreported.setdefault(r, []).append((blk, out))
            if snapshot:
                # One task per row block collects the errors of its earlier blocks (all held
                # by its owner): B small tasks per epoch instead of one per block.
                for r, done in unreported.items():
                    errors[tuple(blk for blk, _ in done)] = client.submit(
                        _blocks.block_errors, *[out for _, out in done],
                        workers=[self.owners[r]], allow_other_workers=False, pure=False)
                unreported = {}
            epoch.pending.append((s, outputs, snapshots, errors))

    def finish_epoch(self):
        """Wait for the oldest submitted epoch; see :meth:`wait_sub_epochs`."""
        return self.wait_sub_epochs(self.n_blocks)

    def wait_sub_epochs(self, count):
        """Wait for the first `count` sub-epochs of the oldest submitted epoch, checkpointing
        as configured, and recover from lost workers on the way; the epoch is done with
        once all its sub-epochs are.

        Returns
        -------
        ndarray of float64, shape (n_blocks ** 2,)
            The oldest epoch's squared error of every block known so far: those of its first
            `count` sub-epochs with sub-epoch checkpoints, else all of them once the epoch is
            done (add them in index order for the epoch's).
        """
        epoch = self._epochs[0]
        while True:
            try:
                while epoch.pending and epoch.pending[0][0] < count:
                    self._checkpoint(epoch, epoch.pending[0])
                    epoch.pending.popleft()
                break
            except WorkerLost:
                self._recover()
        if not epoch.pending:
            self._epochs.popleft()
        return epoch.block_sse

    @property
    def epochs_in_flight(self):
        """Number of epochs submitted and not done with."""
        return len(self._epochs)

    def discard_epochs(self):
        """Let go of the epochs submitted and not finished (their tasks do not run)."""
        futures = []
        for epoch in self._epochs:
            for _, outputs, snapshots, errors in epoch.pending:
                futures += list(outputs.values()) + list(snapshots.values()) + list(errors.values())
        _release(futures)
        self._epochs.clear()

    def restart_from_checkpoint(self):
        """Let go of every epoch in flight and install the checkpoint again, under a new
        generation (so that tasks still running change nothing that is read again)."""
        self.discard_epochs()
        self._install_checkpoint()

    def run_epoch(self, schedule, lr, seed):
        """Submit one epoch and wait for it; see :meth:`finish_epoch`."""
        self.submit_epoch(schedule, lr, seed)
        return self.finish_epoch()

    def _checkpoint(self, epoch, pending):
        """Gather sub-epoch `s`'s errors, and its states when it is checkpointed."""
        s, outputs, snapshots, errors = pending
        futures = list(outputs.values()) + list(snapshots.values()) + list(errors.values())
        self._wait(futures)
        try:
            values = self.client.gather(futures)
        except Exception:
            self._raise_if_worker_lost()
            raise
        if self._lost.is_set():
            raise WorkerLost()
        n_out, n_snap = len(outputs), len(snapshots)
        for blks, sses in zip(errors, values[n_out + n_snap:]):
            epoch.block_sse[list(blks)] = sses
        if outputs:
            rows, cols = list(self._rows), list(self._cols)
            for blk, output in zip(outputs, values[:n_out]):
                cols[blk % self.n_blocks] = output.col
                epoch.block_sse[blk] = output.sse
            for r, row in zip(snapshots, values[n_out:n_out + n_snap]):
                rows[r] = row
            self._rows, self._cols = rows, cols
            self.stats["checkpoint_bytes"] += sum(
                a.nbytes for state in values[:n_out + n_snap]
                for a in (state.col if isinstance(state, _blocks.ColumnOutput) else state))
            epoch.done = s + 1
        if self.after_sub_epoch is not None:
            self.after_sub_epoch(epoch.number, s)

    def close(self):
        """Let go of what is in flight, free the row states on the workers and stop listening
        to scheduler events."""
        self.discard_epochs()
        try:
            self.client.unsubscribe_topic("all")
            self.client.run(_blocks.drop_rows, self.token)
        except Exception:  # noqa: BLE001 - the client may already be closing
            pass
        self._row_after = self._col_futures = None


def _release(futures):
    """Let go of `futures`: the scheduler forgets tasks that nobody wants (queued ones never
    run, running ones are discarded).  Not ``client.cancel``: cancelling a task together with
    one of its dependents trips an assertion in the scheduler (dask 2026.8), which then drops
    the client's connection."""
    seen = set()
    for future in futures:
        if id(future) not in seen:
            seen.add(id(future))
            future.release()
