"""The epoch loop, shared by every factor model and every backend.

The loop owns what an epoch is, whatever the model's math and wherever its blocks run:

- the learning rate of each epoch (asked of the kernel) and the random draws: per epoch the
  block schedule and the kernel seed, from the state's generator, in that order;
- running the epoch's sub-epochs through the backend in calls of about :data:`CHECK_SECONDS`,
  with Ctrl-C delivered only between calls (:mod:`mfsgd.training.guards`); an interrupted
  epoch stays in ``state.partial_epoch`` and the next call finishes it first, so that the
  result does not depend on where training was interrupted or how sub-epochs were grouped;
- the epoch's squared error, summed block by block in block order (so it does not depend
  on threads or workers), the penalty, and the divergence check;
- history records, validation RMSE, early stopping (with the best epoch's arrays restored),
  callbacks and progress reporting.

Two objects plug into it.  The **kernel** is the model's own math (for matrix factorization,
:class:`mfsgd.models.mf.MFKernel`):

``learning_rate(epoch)``
    The step size of epoch `epoch` (0-based).
``open(state)`` / ``close(state)``
    Called before the first and after the last epoch of a training call, also on errors
    (for example: pad the factor rows for the kernel, then make them plain arrays again).
``run(state, blocks, lr, seed)``
    Run, in place on the state, the sub-epochs whose blocks are the rows of `blocks`, and
    return the squared error of each block: an array of ``n_blocks ** 2`` entries of which
    those of `blocks` are set.  Grouping consecutive sub-epochs into calls must not change
    the result.
``penalty(state)``, ``finite(state)``, ``publish(state)``
    The regularization part of the objective; whether the training state that the penalty
    does not cover is finite; making the arrays that ``predict`` reads current (before
    validation, callbacks and at the end).

The **backend** says where the blocks run; the loop calls:

``open(state)`` / ``close(state)``
    Around a training call (also on errors).
``run(state, blocks, lr, seed)``
    As the kernel's ``run``: the sub-epochs whose blocks are the rows of `blocks`, with the
    epoch's learning rate and kernel seed; the blocks' squared errors.
``sync(state)``
    After an epoch's last ``run``: bring the current arrays into the state before the loop
    reads them (penalty, divergence check, validation, callbacks, early stopping).

A backend may start the next epoch before the loop asks for it (once the current epoch has
started, the generator draws nothing until the next epoch's start): with the draws
:func:`draw_epoch` makes from a copy of ``state.rng``, which the loop then makes itself,
unless training stops first.

:class:`LocalBackend` runs the kernel in this process (OpenMP threads over the blocks of a
sub-epoch).  A distributed backend runs the same blocks as tasks elsewhere: it can lay each
block out alone (:func:`mfsgd.training.layout.lay_out_block`) and run it alone
(:meth:`mfsgd.models.mf.MFKernel.run_block`), with the same result as the local kernel.

How they plug in: :class:`mfsgd.models._base.FactorModel` builds both for every training call,
the kernel from its ``_kernel(params)`` hook and the backend from ``_backend(kernel,
params)`` (``LocalBackend`` unless a subclass says otherwise), and calls
:func:`train_epochs` (``fit``) or :func:`continue_training` (``partial_fit``).  A new model
supplies a kernel; a new place to train supplies a backend; neither copies the loop.
"""
import time

import numpy as np

from .._progress import EpochReporter
from ..exceptions import DivergenceError
from .guards import deferred_interrupts
from .layout import block_schedule
from .state import PartialEpoch

# Sub-epochs run in kernel calls of about this many seconds, with Ctrl-C checked between them:
# short enough for an interrupt to land at once, long enough that the cost of a call does not
# count on small data (where one call runs a whole epoch).
CHECK_SECONDS = 0.05


class LocalBackend:
    """Runs a model's kernel in this process."""

    def __init__(self, kernel):
        self.kernel = kernel

    def open(self, state):
        """Prepare the state's arrays for the kernel."""
        self.kernel.open(state)

    def run(self, state, blocks, lr, seed):
        """Run the sub-epochs whose blocks are the rows of `blocks`; the blocks' squared errors."""
        return self.kernel.run(state, blocks, lr, seed)

    def sync(self, state):
        """Nothing to bring back: the kernel works on the state's own arrays."""

    def close(self, state):
        """Return the state's arrays to their plain form."""
        self.kernel.close(state)


def train_epochs(model, state, kernel, params, n_epochs, valid=None, early_stopping=False,
                 backend=None):
    """Run `n_epochs` epochs; the rest of an interrupted epoch counts as the first.

    Parameters
    ----------
    model : estimator
        Passed to the callbacks; its ``verbose`` and ``show_progress`` control reporting.
    state : FitState
        Trained in place; ``history``, ``epochs_done`` and ``best_epoch`` are updated.
    kernel : object
        The model's math (see the module docstring).
    params : dict
        The model's checked parameters: ``patience``, ``tol``, ``callbacks``, ``n_threads``.
    n_epochs : int
    valid : (user rows, item rows, ratings), optional
        Validation ratings in the state's index space; their RMSE is recorded every epoch.
    early_stopping : bool
        Stop after ``patience`` epochs without an improvement of the validation RMSE by
        ``tol``, and restore the arrays of the best epoch.
    backend : object, optional
        Where blocks run; default :class:`LocalBackend` of `kernel`.

    Raises
    ------
    DivergenceError
        When the squared error or the penalty of an epoch is not finite; the epoch is not
        recorded.
    KeyboardInterrupt
        Between kernel calls or epochs, never inside an update of the state.
    """
    backend = LocalBackend(kernel) if backend is None else backend
    with deferred_interrupts() as check_interrupt:
        _Epochs(model, state, kernel, backend, params, valid, early_stopping,
                check_interrupt).run(n_epochs)


def continue_training(model, state, kernel, params, n_epochs, valid=None, backend=None):
    """:func:`train_epochs` without early stopping; when training diverges, the state returns to
    where it was before the call (``partial_fit``)."""
    snapshot = state.snapshot()
    try:
        train_epochs(model, state, kernel, params, n_epochs, valid, False, backend)
    except DivergenceError:
        state.restore(snapshot)
        kernel.publish(state)
        raise


class _Epochs:
    """One training call's epochs."""

    def __init__(self, model, state, kernel, backend, params, valid, early_stopping,
                 check_interrupt):
        self.model, self.state, self.kernel, self.backend = model, state, kernel, backend
        self.params, self.valid, self.early_stopping = params, valid, early_stopping
        self.check_interrupt = check_interrupt
        self.sub_epoch_seconds = None

    def run(self, n_epochs):
        state, params = self.state, self.params
        self.backend.open(state)
        reporter = EpochReporter(n_epochs, self.model.verbose, self.model.show_progress,
                                 self.valid is not None)
        best_rmse, best_arrays, waited = np.inf, None, 0
        try:
            for _ in range(n_epochs):
                epoch = state.epochs_done
                lr = self.kernel.learning_rate(epoch)
                sse, seconds = self._epoch(lr)
                self.backend.sync(state)
                penalty = self.kernel.penalty(state)
                _check_finite(sse if self.kernel.finite(state) else float("nan"), penalty, lr,
                              epoch)
                state.epochs_done += 1
                record = {"epoch": state.epochs_done, "learning_rate": lr,
                          "train_rmse": float(np.sqrt(sse / state.n_train))}
                if self.valid is not None or params["callbacks"]:
                    self.kernel.publish(state)
                if self.valid is not None:
                    record["valid_rmse"] = state.rmse(self.valid, params["n_threads"])
                record["objective"] = sse + penalty
                record["seconds"] = seconds
                if self.early_stopping:
                    improved = record["valid_rmse"] < best_rmse - params["tol"]
                    record["best"] = bool(improved)
                    if improved:
                        best_rmse, waited = record["valid_rmse"], 0
                        best_arrays = (state.epochs_done, state.trained_arrays(copy=True))
                    else:
                        waited += 1
                state.history.append(record)
                reporter.epoch(record)
                stop = any([bool(callback(record, self.model))
                            for callback in params["callbacks"]])
                if stop or (self.early_stopping and waited >= params["patience"]):
                    break
                self.check_interrupt()
        finally:
            reporter.close()
            self.backend.close(state)
        if self.early_stopping and best_arrays is not None:
            state.best_epoch = best_arrays[0]
            state.set_arrays(best_arrays[1])
        self.kernel.publish(state)

    def _epoch(self, lr):
        """One epoch, sub-epoch by sub-epoch (or the rest of an interrupted one).

        The sub-epochs run in backend calls of about CHECK_SECONDS each (one sub-epoch per call
        until the time of one is known).  Between calls an interrupt may land: the epoch then
        stays in ``state.partial_epoch`` (its schedule and seed, the sub-epochs done, their
        blocks' errors), so that finishing it later gives the same updates and the same sum
        of squared errors as an uninterrupted epoch.

        Returns
        -------
        sse : float
            Sum of squared errors over the epoch, summed block by block in block order.
        seconds : float
            Time spent in the backend's calls.
        """
        state = self.state
        part = state.partial_epoch
        if part is None:
            n_blocks = state.layout.n_blocks
            blocks, seed = draw_epoch(n_blocks, state.rng)
            part = state.partial_epoch = PartialEpoch(blocks, seed, np.zeros(n_blocks ** 2))
            state.layout.schedule = blocks          # what the layout's block_seconds refer to
        n_sub = len(part.blocks)
        while part.done < n_sub:
            first = part.done
            count = 1 if not self.sub_epoch_seconds else int(CHECK_SECONDS
                                                              / self.sub_epoch_seconds)
            last = min(n_sub, first + max(1, count))
            start = time.perf_counter()
            block_sse = self.backend.run(state, part.blocks[first:last], lr, part.seed)
            elapsed = time.perf_counter() - start
            part.seconds += elapsed
            self.sub_epoch_seconds = elapsed / (last - first)
            ran = part.blocks[first:last].ravel()
            part.block_sse[ran] = block_sse[ran]
            part.done = last
            if part.done < n_sub:
                try:
                    self.check_interrupt()
                except KeyboardInterrupt as interrupt:
                    _add_note(interrupt, f"mfsgd: training stopped after {state.epochs_done} "
                              f"complete epochs and {part.done} of {n_sub} sub-epochs of the "
                              f"next; partial_fit completes that epoch and continues exactly")
                    raise
        state.partial_epoch = None
        sse = 0.0
        for value in part.block_sse.tolist():
            sse += value
        return sse, part.seconds


def draw_epoch(n_blocks, rng):
    """The random draws that start an epoch, in the loop's order: the block schedule
    (:func:`mfsgd.training.layout.block_schedule`), then the kernel seed.

    A backend that starts the next epoch before the loop has ended the current one (a
    distributed backend keeping its workers busy while the client gathers the factors,
    computes the objective and runs the callbacks) draws it with this function from a copy
    of the state's generator.

    Returns
    -------
    blocks : ndarray of int32, shape (n_blocks, n_blocks)
    seed : int
    """
    blocks = block_schedule(n_blocks, rng)
    return blocks, int(rng.integers(0, 2**63))


def _check_finite(sse, penalty, lr, epoch):
    # The penalty sums the square of every factor (weighted by counts; 0 * inf is nan), so it
    # is finite only when every factor is.
    if np.isfinite(sse) and np.isfinite(penalty):
        return
    raise DivergenceError(
        f"training diverged at epoch {epoch + 1}: the squared error became {sse!r} with "
        f"learning_rate={lr:g}; use a smaller learning_rate (e.g. {lr / 10:g})")


def _add_note(error, note):
    if hasattr(error, "add_note"):                  # Python >= 3.11
        error.add_note(note)
