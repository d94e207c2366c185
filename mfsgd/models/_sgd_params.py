"""The parameters every SGD-trained factor model shares (MatrixFactorization, SVDpp),
checked at the boundary."""
import numpy as np

from .._validation import check_choice, check_dtype, check_float, check_int, check_n_threads

LEARNING_RATE_SCHEDULES = ("constant", "inverse", "adagrad")


def check_sgd_params(model):
    """The shared parameters of `model`, checked and resolved.

    Parameters
    ----------
    model : MatrixFactorization or SVDpp
        Read for ``n_factors``, ``n_epochs``, ``learning_rate``, ``regularization``,
        ``init_std``, ``learning_rate_schedule``, ``learning_rate_decay``, ``dtype``,
        ``patience``, ``tol``, ``bias_regularization``, ``validation_fraction``, ``biased``,
        ``non_negative``, ``verbose``, ``early_stopping``, ``show_progress``, ``n_blocks``,
        ``callbacks`` and ``n_threads``.

    Returns
    -------
    dict
        Every numeric parameter as a Python number, ``bias_regularization`` resolved,
        ``dtype`` as np.float32 or np.float64, ``callbacks`` as a list and ``n_threads`` as an
        int.

    Raises
    ------
    TypeError, ValueError
        Naming the first bad parameter.
    """
    params = {
        "n_factors": check_int("n_factors", model.n_factors, 1),
        "n_epochs": check_int("n_epochs", model.n_epochs, 0),
        "learning_rate": check_float("learning_rate", model.learning_rate,
                                     strictly_positive=True),
        "regularization": check_float("regularization", model.regularization, minimum=0.0),
        "init_std": check_float("init_std", model.init_std, minimum=0.0),
        "learning_rate_schedule": check_choice("learning_rate_schedule",
                                               model.learning_rate_schedule,
                                               LEARNING_RATE_SCHEDULES),
        "learning_rate_decay": check_float("learning_rate_decay", model.learning_rate_decay,
                                           minimum=0.0),
        "dtype": check_dtype("dtype", model.dtype),
        "patience": check_int("patience", model.patience, 1),
        "tol": check_float("tol", model.tol, minimum=0.0),
    }
    params["bias_regularization"] = (
        params["regularization"] if model.bias_regularization is None
        else check_float("bias_regularization", model.bias_regularization, minimum=0.0))
    fraction = check_float("validation_fraction", model.validation_fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    params["validation_fraction"] = fraction
    for name in ("biased", "non_negative", "verbose", "early_stopping", "show_progress"):
        if not isinstance(getattr(model, name), (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {getattr(model, name)!r}")
    if model.n_blocks != "auto":
        check_int("n_blocks", model.n_blocks, 1)
    params["biased"] = model.biased
    params["non_negative"] = model.non_negative
    params["callbacks"] = checked_callbacks(model.callbacks)
    params["n_threads"] = check_n_threads("n_threads", model.n_threads)
    return params


def checked_callbacks(callbacks):
    """`callbacks` as a list of callables (None: none; one callable: a list of it).

    Raises
    ------
    TypeError
        When `callbacks` is neither a callable nor an iterable of callables.
    """
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callable or a list of callables, got "
                        f"{type(callbacks).__name__}") from None
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"callbacks must be callables, got {callback!r}")
    return callbacks
