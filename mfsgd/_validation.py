"""Input checks at the public boundary: every message names the argument and the bad value."""
import numbers

import numpy as np

from ._threads import usable_cpus


def check_int(name, value, minimum=None):
    """Return `value` as an int, or raise TypeError/ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_float(name, value, minimum=None, strictly_positive=False):
    """Return `value` as a finite float, or raise TypeError/ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if strictly_positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_n_threads(name, value):
    """The thread count `value` stands for: None means every CPU this process may use (see
    :func:`mfsgd._threads.usable_cpus`), else an int >= 1."""
    if value is None:
        return usable_cpus()
    return check_int(name, value, 1)


def check_choice(name, value, choices):
    """Raise ValueError unless `value` is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_dtype(name, value):
    """Return np.float32 or np.float64 for `value`, else raise TypeError."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {value!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {value!r}")
    return dtype.type


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
ID_KINDS = "integer or string ids"
TIMESTAMP_KINDS = ("whole numbers (scale fractional times to integer units such as "
                   "milliseconds)")


class MixedRangeError(ValueError):
    """Integers that no single 64-bit dtype holds (some negative, some >= 2**63); `values`
    keeps them as Python ints for callers that can use them one by one."""

    def __init__(self, values, message):
        super().__init__(message)
        self.values = values


def as_1d_array(name, values):
    """`values` as a 1-D ndarray, or ValueError naming `name`.

    Arrays and array-likes with a dtype (pandas Series, Index) are taken as they are.  Other
    sequences (lists, tuples) become object arrays, so that every element keeps its Python
    type for the checks that follow: numpy would otherwise turn ``[1, "a"]`` into strings,
    ``[True, 2]`` into integers and strip the trailing NUL of ``"a\\0"`` before anything
    could be checked.
    """
    if isinstance(values, np.ndarray):
        array = values
    elif hasattr(values, "dtype") and hasattr(values, "__array__"):
        array = np.asarray(values)
    else:
        try:
            array = np.asarray(values, dtype=object)
        except ValueError as error:              # ragged nesting numpy cannot shape
            raise ValueError(f"{name} must be one-dimensional: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _first(mask):
    """Position of the first True of a boolean array."""
    return int(np.flatnonzero(mask)[0])


def _element_types(array):
    """(type of every element as an object array, the distinct types) of an object array."""
    types = np.frompyfunc(type, 1, 1)(array) if array.size else np.zeros(0, dtype=object)
    return types, set(types.tolist())


def _type_mask(types, wanted):
    """Boolean mask of the elements whose type is one of `wanted`."""
    wanted = set(wanted)
    # Not `types == kind`: numpy would try to turn a numpy type such as np.bool_ into an array.
    return np.fromiter((kind in wanted for kind in types.tolist()), dtype=bool,
                       count=len(types))


def _is_integer_type(kind):
    return issubclass(kind, (int, np.integer)) and not issubclass(kind, (bool, np.bool_))


def _is_float_type(kind):
    return issubclass(kind, (float, np.floating))


def as_id_array(name, values):
    """Raw ids as an exact 1-D integer or str array, or raise naming `name`.

    Integer arrays are returned as they are; floats must be whole and within int64 and
    become int64; bytes are decoded as UTF-8; object arrays are checked
    element by element and must hold only integers (and whole floats) or only str.  A str
    ending in NUL is refused: numpy's fixed-width strings drop trailing NULs, which would
    make ``"a\\0"`` and ``"a"`` one id (numpy str and bytes arrays have lost them already,
    before any check could see them; NULs inside an id are kept).

    Parameters
    ----------
    name : str
        The argument, for error messages.
    values : array-like

    Returns
    -------
    ndarray of a signed or unsigned integer dtype, or of str dtype
        Never a value different from the input (object arrays of integers become int64, or
        uint64 when an id is 2**63 or more).

    Raises
    ------
    TypeError
        For values that are neither integers nor strings (bool, None, bytes objects, ...).
    ValueError
        For non-integral or out-of-range numbers, trailing NULs, undecodable bytes or a
        wrong shape; the message names the position of the first bad id.
    """
    array = as_1d_array(name, values)
    kind = array.dtype.kind
    if kind == "O":
        return _object_ids(name, array)
    if kind == "U":
        return array
    if kind == "S":
        return _decoded_ids(name, array)
    if kind == "f":
        return _whole_floats(name, array, ID_KINDS)
    if kind in "iu":
        return array
    raise TypeError(f"{name} must hold integer or string ids, got dtype {array.dtype}")


def _check_no_trailing_nul(name, strings, lengths):
    """Raise ValueError when numpy dropped a trailing NUL from an id: `lengths` are the
    lengths of the Python strings that `strings` stores."""
    if strings.size == 0:
        return
    shortened = np.char.str_len(strings) != lengths
    if shortened.any():
        position = _first(shortened)
        raise ValueError(f"{name} holds an id ending in a NUL character at position "
                         f"{position}; numpy strings drop trailing NULs, so 'a\\x00' and 'a' "
                         f"would become one id: remove or replace the NUL characters")


def _decoded_ids(name, array):
    try:
        return np.char.decode(array, "utf-8")
    except UnicodeDecodeError:
        for position, value in enumerate(array.tolist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{name} holds bytes that are not UTF-8 at position "
                                 f"{position}: {value!r}") from None
        raise


def _whole_floats(name, array, expected):
    """Floats that are whole numbers within int64, as int64; ValueError naming the first
    other one (`expected` says what the argument must hold)."""
    values = array.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (values == np.floor(values))
        fits = whole & (values >= -(2.0**63)) & (values < 2.0**63)
    if not fits.all():
        position = _first(~fits)
        value = values[position].item()
        if whole[position]:
            raise ValueError(f"{name} holds the float {value!r} at position {position}, beyond "
                             f"the int64 range in which floats are exact integers; pass such "
                             f"values as integers")
        raise ValueError(f"{name} must hold {expected}, found {value!r} at position {position}")
    return values.astype(np.int64)


def _object_ids(name, array):
    types, distinct = _element_types(array)
    bad = [t for t in distinct
           if not (issubclass(t, str) or _is_integer_type(t) or _is_float_type(t))]
    if bad:
        position = _first(_type_mask(types, bad))
        value = array[position]
        raise TypeError(f"{name} must hold integer or string ids, found {value!r} "
                        f"({type(value).__name__}) at position {position}")
    strings = [t for t in distinct if issubclass(t, str)]
    if strings and len(strings) != len(distinct):
        is_str = _type_mask(types, strings)
        i, j = _first(is_str), _first(~is_str)
        raise TypeError(f"{name} mixes strings and numbers: {array[i]!r} at position {i} and "
                        f"{array[j]!r} at position {j}")
    if strings:
        converted = array.astype(str) if array.size else np.zeros(0, dtype="<U1")
        lengths = np.frompyfunc(len, 1, 1)(array).astype(np.int64) if array.size else None
        _check_no_trailing_nul(name, converted, lengths)
        return converted
    return _object_integers(name, array, types, distinct, ID_KINDS)


def _object_integers(name, array, types, distinct, expected):
    """An object array of integers and whole floats as int64, or uint64 when needed."""
    floats = [t for t in distinct if _is_float_type(t)]
    if floats:
        is_float = _type_mask(types, floats)
        values = np.zeros(len(array), dtype=np.float64)
        values[is_float] = array[is_float].astype(np.float64)
        whole = _whole_floats(name, values, expected)   # error positions are those of `array`
        if is_float.all():
            return whole
        array = array.copy()
        array[is_float] = whole[is_float]
    try:
        return array.astype(np.int64)
    except OverflowError:
        pass
    values = [int(v) for v in array.tolist()]
    low, high = min(values), max(values)
    if low >= 0 and high <= UINT64_MAX:
        return np.array(values, dtype=np.uint64)
    bounds = (INT64_MIN, INT64_MAX) if low < 0 else (0, UINT64_MAX)
    position = next(i for i, v in enumerate(values) if not bounds[0] <= v <= bounds[1])
    raise MixedRangeError(values, f"{name} holds {values[position]} at position {position}, "
                                  f"which does not fit 64 bits together with the other values "
                                  f"(they must all lie in [-2**63, 2**63) or all in [0, 2**64))")


def as_rating_array(name, values):
    """Return finite 1-D ratings as float32 (without copying float32 input), or raise naming
    `name` and the position of the first bad rating.  The result is never written to.

    Ratings are stored in float32: a finite rating beyond float32's range (about 3.4e38) is
    a ValueError rather than an infinity.
    """
    array = as_1d_array(name, values)
    if array.dtype.kind == "O":
        array = _object_numbers(name, array)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(np.float32, copy=False)
    finite = np.isfinite(converted)
    if not finite.all():
        position = _first(~finite)
        value = array[position].item()
        if np.isfinite(value):
            raise ValueError(f"{name} holds {value!r} at position {position}, beyond the "
                             f"float32 range (±{FLOAT32_MAX:.4g}) that ratings are stored in")
        raise ValueError(f"{name} must be finite, found {value!r} at position {position}")
    return converted


def _numbers_only(name, array, expected):
    """(element types, distinct types) of an object array; TypeError naming the first
    element that is not an integer or a float (bool is not a number here)."""
    types, distinct = _element_types(array)
    bad = [t for t in distinct if not (_is_integer_type(t) or _is_float_type(t))]
    if bad:
        position = _first(_type_mask(types, bad))
        value = array[position]
        raise TypeError(f"{name} must hold {expected}, found {value!r} "
                        f"({type(value).__name__}) at position {position}")
    return types, distinct


def _object_numbers(name, array):
    """An object array of real numbers (no bool) as float64, or raise naming a position."""
    _numbers_only(name, array, "numbers")
    try:
        return array.astype(np.float64)
    except OverflowError:
        for position, value in enumerate(array.tolist()):
            try:
                float(value)
            except OverflowError:
                raise ValueError(f"{name} holds {value!r} at position {position}, beyond the "
                                 f"float32 range that ratings are stored in") from None
        raise


def as_timestamp_array(name, values):
    """Timestamps as exact int64, or raise naming `name` and the first bad position.

    Integers must fit int64; floats must be finite whole numbers within int64; datetime64
    values become Unix seconds (sub-second parts floored), NaT and dates beyond int64
    seconds are refused.

    Parameters
    ----------
    name : str
    values : array-like of int, float or datetime64

    Returns
    -------
    ndarray of int64
    """
    array = as_1d_array(name, values)
    kind = array.dtype.kind
    if kind == "O":
        array = _object_timestamps(name, array)
        kind = array.dtype.kind
    if kind == "M":
        return _datetime_seconds(name, array)
    if kind == "f":
        return _whole_floats(name, array, TIMESTAMP_KINDS)
    if kind == "u":
        too_big = array > INT64_MAX
        if too_big.any():
            position = _first(too_big)
            raise ValueError(f"{name} holds {array[position].item()} at position {position}, "
                             f"beyond int64")
        return array.astype(np.int64)
    if kind == "i":
        return array.astype(np.int64, copy=False)
    raise TypeError(f"{name} must hold integers, whole floats or datetime64, got dtype "
                    f"{array.dtype}")


def _object_timestamps(name, array):
    types, distinct = _numbers_only(name, array, "integers, whole floats or datetime64")
    values = _object_integers(name, array, types, distinct, TIMESTAMP_KINDS)
    if values.dtype == np.uint64:
        position = _first(values > INT64_MAX)
        raise ValueError(f"{name} holds {values[position].item()} at position {position}, "
                         f"beyond int64")
    return values


_SECONDS_PER_UNIT = {"W": 604_800, "D": 86_400, "h": 3_600, "m": 60, "s": 1}
_UNITS_PER_SECOND = {"ms": 10**3, "us": 10**6, "ns": 10**9, "ps": 10**12, "fs": 10**15,
                     "as": 10**18}


def _datetime_seconds(name, array):
    """datetime64 values as int64 Unix seconds, floored; ValueError on NaT or overflow.

    Computed from the integer counts: numpy's own conversion to seconds wraps around near
    the ends of int64 instead of failing."""
    nat = np.isnat(array)
    if nat.any():
        raise ValueError(f"{name} holds NaT (a missing time) at position {_first(nat)}")
    unit, step = np.datetime_data(array.dtype)
    counts = array.view(np.int64)
    if unit in _UNITS_PER_SECOND:
        per_second = _UNITS_PER_SECOND[unit]
        if step == 1:
            return np.floor_divide(counts, per_second)
        return np.array([count * step // per_second for count in counts.tolist()],
                        dtype=np.int64)
    if unit in _SECONDS_PER_UNIT:
        factor = step * _SECONDS_PER_UNIT[unit]
        too_far = (counts > INT64_MAX // factor) | (counts < INT64_MIN // factor + 1)
        if not too_far.any():
            return counts * factor
    else:
        # Years and months are calendar units: numpy converts them; a conversion that
        # wrapped around does not convert back.
        seconds = array.astype("datetime64[s]")
        too_far = np.isnat(seconds) | (seconds.astype(array.dtype) != array)
        if not too_far.any():
            return seconds.view(np.int64).copy()
    position = _first(too_far)
    raise ValueError(f"{name} holds {array[position]!r} at position {position}, beyond the "
                     f"int64 range of Unix seconds")
