"""Check the contents of a model file as strictly as ``fit`` checks its input.

``save`` runs the same checks before writing, so every file it writes loads again; ``load`` runs
them on what it read, after the digest, so a file whose digest was recomputed after an edit
still cannot hand the estimator a state it could never have reached by training.
"""
import json
import math

import numpy as np

from ..training.seen import check_seen

RNG_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
MAX_JSON_DEPTH = 16
HISTORY_NUMBERS = ("learning_rate", "train_rmse", "valid_rmse", "objective", "seconds")
STATE_KEYS = {"epochs_done", "best_epoch", "rng_state"}

_U32, _U64, _U128 = 2**32, 2**64, 2**128
_COUNTER_STATE = {"has_uint32": range(2), "uinteger": range(_U32)}
# The exact layout of each bit generator's state: a range is an integer leaf, a list spec
# ("list", length, range) a list of integers.
RNG_STATES = {
    "PCG64": {"state": {"state": range(_U128), "inc": range(_U128)}, **_COUNTER_STATE},
    "PCG64DXSM": {"state": {"state": range(_U128), "inc": range(_U128)}, **_COUNTER_STATE},
    "MT19937": {"state": {"key": ("list", 624, range(_U32)), "pos": range(625)}},
    "Philox": {"state": {"counter": ("list", 4, range(_U64)), "key": ("list", 2, range(_U64))},
               "buffer": ("list", 4, range(_U64)), "buffer_pos": range(5), **_COUNTER_STATE},
    "SFC64": {"state": {"state": ("list", 4, range(_U64))}, **_COUNTER_STATE},
}


class FieldError(ValueError):
    """A model file's field (`field`) holds something a trained model cannot hold."""

    def __init__(self, field, problem):
        super().__init__(f"{field}: {problem}")
        self.field = field


def check_contents(arrays, cls):
    """Check the arrays of a model file (after its digest) and decode its JSON fields.

    Parameters
    ----------
    arrays : dict of str to ndarray
        Every array of the file, with the dtypes and dimensions of its schema and in native
        byte order.
    cls : type
        The estimator class; its own parameter checks are applied.

    Returns
    -------
    dict
        ``params`` (keyword arguments for `cls`), ``epochs_done``, ``best_epoch`` (int or
        None), ``rng`` (a numpy Generator), ``history`` (list of dict) and ``item_titles``
        (dict or None).

    Raises
    ------
    FieldError
        A ValueError naming the first field found wrong.
    """
    params, checked = _checked_params(_json_field(arrays, "params_json"), cls)
    _check_factor_arrays(arrays, checked, cls.state_class)
    _check_ids(arrays, "user", len(arrays["user_bias"]))
    _check_ids(arrays, "item", len(arrays["item_bias"]))
    _check_scalars(arrays)
    # A model's own fields beyond FitState's (raises FieldError).
    cls.state_class.check_saved(arrays)
    try:
        check_seen(arrays["seen_indptr"], arrays["seen_indices"], len(arrays["user_bias"]),
                   len(arrays["item_bias"]), "seen items")
    except ValueError as error:
        raise FieldError("seen_indptr/seen_indices", str(error)) from None
    state = _json_field(arrays, "state_json")
    if not isinstance(state, dict) or set(state) != STATE_KEYS:
        raise FieldError("state_json", f"must be an object with the keys {sorted(STATE_KEYS)}")
    epochs_done = state["epochs_done"]
    if type(epochs_done) is not int or epochs_done < 0:
        raise FieldError("state_json", f"epochs_done must be an integer >= 0, got "
                         f"{_short(epochs_done)}")
    best_epoch = state["best_epoch"]
    if best_epoch is not None and (type(best_epoch) is not int
                                   or not 1 <= best_epoch <= epochs_done):
        raise FieldError("state_json", f"best_epoch must be None or an epoch in "
                         f"[1, {epochs_done}], got {_short(best_epoch)}")
    history = _checked_history(_json_field(arrays, "history_json"), epochs_done)
    return {"params": params, "epochs_done": epochs_done, "best_epoch": best_epoch,
            "rng": rng_from_state(state["rng_state"]), "history": history,
            "item_titles": _checked_titles(arrays)}


def rng_from_state(state):
    """A numpy Generator restored exactly from a saved bit-generator state.

    Raises
    ------
    FieldError
        When `state` is not, exactly, the state of one of :data:`RNG_BIT_GENERATORS`.
    """
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in RNG_BIT_GENERATORS:
        raise FieldError("state_json", f"unsupported random generator state "
                         f"{_short(name if name is not None else state)}")
    problem = _layout_problem({k: v for k, v in state.items() if k != "bit_generator"},
                              RNG_STATES[name], "rng_state")
    if problem:
        raise FieldError("state_json", problem)
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = json.loads(json.dumps(state))
        restored = json.loads(json.dumps(jsonable(bit_generator.state)))
    except (ValueError, TypeError, OverflowError, KeyError) as error:
        raise FieldError("state_json", f"rng_state is not a valid {name} state ({error})") from None
    if restored != state:
        raise FieldError("state_json", f"rng_state is not a {name} state numpy restores exactly")
    return np.random.Generator(bit_generator)


def jsonable(value):
    """`value` with numpy arrays and scalars turned into lists and Python scalars.

    Parameters
    ----------
    value : object
        Dicts, lists and tuples are converted item by item.

    Returns
    -------
    object
        JSON-serializable when `value` holds only those, numbers, str and None.
    """
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------- JSON fields
def _json_field(arrays, name):
    """Parse the JSON text of `name`, nested at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(str(arrays[name]))
    except RecursionError:
        raise FieldError(name, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:  # JSONDecodeError, and ints beyond Python's digit limit
        raise FieldError(name, f"not valid JSON ({error})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise FieldError(name, f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value):
    """Nesting depth of lists and dicts in a parsed JSON value, without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:
            pending.extend((child, depth + 1) for child in item)
    return deepest


def _checked_params(params, cls):
    """(keyword arguments for cls, cls's own checked parameters) from the saved params."""
    if not isinstance(params, dict):
        raise FieldError("params_json", "must be an object of parameter values")
    names = set(cls().get_params(deep=False))
    unknown = sorted(set(params) - names)
    if unknown:
        raise FieldError("params_json", f"unknown parameters {_short(unknown)}")
    for name, value in params.items():
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise FieldError("params_json", f"{name} must be a number, str or None, got "
                             f"{_short(value)}")
    params = dict(params)
    if "dtype" in params:
        if params["dtype"] not in ("float32", "float64"):
            raise FieldError("params_json", f"dtype must be 'float32' or 'float64', got "
                             f"{_short(params['dtype'])}")
        params["dtype"] = getattr(np, params["dtype"])
    if params.get("callbacks") is not None:
        raise FieldError("params_json", "callbacks must be None: callbacks are never saved")
    seed = params.get("random_state")
    if seed is not None and (type(seed) is not int or seed < 0):
        raise FieldError("params_json", f"random_state must be None or an integer >= 0, got "
                         f"{_short(seed)}")
    threads = params.get("n_threads")
    if threads is not None and (type(threads) is not int or threads < 1):
        raise FieldError("params_json", f"n_threads must be None or an integer >= 1, got "
                         f"{_short(threads)}")
    try:
        model = cls(**params)
        checked = model.checked_params()
    except (TypeError, ValueError) as error:
        raise FieldError("params_json", str(error)) from None
    return params, checked


def _checked_history(history, epochs_done):
    if not isinstance(history, list):
        raise FieldError("history_json", "must be a list of per-epoch records")
    previous = 0
    for position, record in enumerate(history):
        where = f"record {position}"
        if not isinstance(record, dict):
            raise FieldError("history_json", f"{where} is not an object")
        epoch = record.get("epoch")
        if type(epoch) is not int or not previous < epoch <= epochs_done:
            raise FieldError("history_json", f"{where} has epoch {_short(epoch)}; epochs must "
                             f"increase from 1 up to epochs_done={epochs_done}")
        previous = epoch
        for key in HISTORY_NUMBERS:
            value = record.get(key, 0.0)
            if type(value) not in (int, float):
                raise FieldError("history_json", f"{where} has {key}={_short(value)}, not a "
                                 f"number")
        if type(record.get("best", False)) is not bool:
            raise FieldError("history_json", f"{where} has best={_short(record['best'])}, not "
                             f"true or false")
    return history


# ---------------------------------------------------------------------- arrays
def _check_factor_arrays(arrays, checked, state_class):
    """The float arrays of the state's saved fields: dtype, shapes, finite values."""
    dtype = np.dtype(checked["dtype"])
    saved = [f for f in state_class.saved_fields() if f.metadata["saved"] in ("factors", "values")]
    names = [f.name for f in saved]
    for name in names:
        if arrays[name].dtype != dtype:
            raise FieldError(name, f"has dtype {arrays[name].dtype}, the parameters say {dtype}")
    n_users, k = arrays["user_factors"].shape
    n_items, item_k = arrays["item_factors"].shape
    if k != item_k or k < 1:
        raise FieldError("item_factors", f"user factors have k={k}, item factors k={item_k}")
    if k != checked["n_factors"]:
        raise FieldError("params_json", f"n_factors={checked['n_factors']} but the factors "
                         f"have {k} columns")
    rows = {"user": n_users, "item": n_items}
    adagrad = checked.get("learning_rate_schedule") == "adagrad"
    for f in saved:
        n = rows[f.metadata["rows"]]
        if f.metadata["saved"] == "factors":
            if arrays[f.name].shape != (n, k):
                raise FieldError(f.name, f"has shape {arrays[f.name].shape}, expected ({n}, {k})")
        else:               # adagrad's sums (grow="ones") are empty unless adagrad is used
            _check_length(arrays, f.name, n if f.metadata["grow"] != "ones" or adagrad else 0)
    for name in names:
        values = arrays[name]
        if not np.isfinite(values).all():
            raise FieldError(name, f"holds {_first(values, ~np.isfinite(values))}; a trained "
                             f"model is finite")
    for f in saved:
        if f.metadata["grow"] != "ones":
            continue
        low = arrays[f.name] < 1  # adagrad's sums start at 1 and only grow
        if low.any():
            raise FieldError(f.name, f"holds {_first(arrays[f.name], low)}; adagrad's squared-"
                             f"gradient sums are >= 1")


def _check_scalars(arrays):
    mean = float(arrays["global_mean"])
    if not math.isfinite(mean):
        raise FieldError("global_mean", f"must be finite, got {mean!r}")
    _check_length(arrays, "rating_range", 2)
    low, high = (float(value) for value in arrays["rating_range"])
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise FieldError("rating_range", f"must be (smallest, largest), finite and in order, "
                         f"got ({low!r}, {high!r})")


def _check_ids(arrays, kind, n_rows):
    ids = arrays[f"{kind}_ids"]
    if bool(arrays[f"{kind}_ids_identity"]):
        if len(ids) or ids.dtype != np.int64:
            raise FieldError(f"{kind}_ids", f"holds {len(ids)} ids of dtype {ids.dtype} for an "
                             f"identity map, which stores none (an empty int64 array)")
        return
    _check_length(arrays, f"{kind}_ids", n_rows)
    if len(np.unique(ids)) != n_rows:
        raise FieldError(f"{kind}_ids", "holds repeated ids")


def _checked_titles(arrays):
    if "item_titles" not in arrays:
        return None
    ids, titles = arrays["item_titles_ids"], arrays["item_titles"]
    _check_length(arrays, "item_titles", len(ids))
    if len(np.unique(ids)) != len(ids):
        raise FieldError("item_titles_ids", "holds repeated ids")
    return dict(zip(ids.tolist(), titles.tolist()))


def _check_length(arrays, name, n):
    if arrays[name].shape != (n,):
        raise FieldError(name, f"has shape {arrays[name].shape}, expected ({n},)")


# ---------------------------------------------------------------------- helpers
def _layout_problem(value, spec, where):
    """Why `value` does not follow `spec` (see RNG_STATES), or None."""
    if isinstance(spec, dict):
        if not isinstance(value, dict) or set(value) != set(spec):
            return f"{where} must be an object with the keys {sorted(spec)}"
        for key, inner in spec.items():
            problem = _layout_problem(value[key], inner, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(spec, tuple):
        _, length, bounds = spec
        if not isinstance(value, list) or len(value) != length:
            return f"{where} must be a list of {length} integers"
        bad = [item for item in value if type(item) is not int or item not in bounds]
        return f"{where} holds {_short(bad[0])}, outside {_bounds(bounds)}" if bad else None
    if type(value) is not int or value not in spec:
        return f"{where} must be an integer in {_bounds(spec)}, got {_short(value)}"
    return None


def _bounds(bounds):
    return f"[0, {bounds.stop})" if bounds.stop < 1000 else f"[0, 2**{bounds.stop.bit_length() - 1})"


def _first(values, mask):
    return repr(values[mask].flat[0].item())


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
