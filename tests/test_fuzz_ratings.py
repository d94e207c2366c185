"""Fuzzing the Ratings constructors against a pure-Python reference.

Every generated input to ``Ratings.from_arrays``, ``Ratings.from_dataframe`` (with pandas) and
``Ratings.from_sparse`` either gives exactly the ratings that the dict-based reference below
computes, or raises ValueError/TypeError naming the argument the reference finds bad first.
Nothing else is allowed: no other exception, no call over 10 s, and no peak allocation over
``MEMORY_BOUND`` (the inputs hold at most ``MAX_RATINGS`` ratings; shapes of sparse matrices
go up to 2**40, so anything sized by the shape fails the bound).

Run briefly with a fixed seed by ``pytest`` (profile "ci"), for long by
``python -m benchmarks.fuzz`` (profile "long").
"""
import importlib.util
import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from mfsgd import Ratings
from mfsgd.data._columns import ALIASES

pytestmark = pytest.mark.fuzz

MAX_RATINGS = 40
#: Peak bytes one constructor call may allocate for inputs of at most MAX_RATINGS ratings.
MEMORY_BOUND = 2 << 20
INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
FLOAT32_MAX = float(np.finfo(np.float32).max)
POLICIES = ("error", "last", "mean")


class Bad(Exception):
    """The reference's verdict: this argument is invalid."""

    def __init__(self, argument):
        super().__init__(argument)
        self.argument = argument


# ---------------------------------------------------------------- the reference
def elements(values):
    """The Python values a caller's argument holds, as numpy would hand them over."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "S":
            return values.tolist(), "S"
        return values.tolist(), values.dtype.kind
    return list(values), "list"


def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_float(v):
    return isinstance(v, (float, np.floating))


def whole_number(argument, v):
    """An integer, or a whole float within int64, as a Python int; else Bad(argument)."""
    if is_int(v):
        return int(v)
    if is_float(v) and math.isfinite(v) and v == math.floor(v) and -(2.0**63) <= v < 2.0**63:
        return int(v)
    raise Bad(argument)


def reference_ids(argument, values):
    """Raw ids as Python ints or strs, or Bad(argument)."""
    items, kind = elements(values)
    if kind in "bMmc":
        raise Bad(argument)
    if kind == "S":
        try:
            items = [v.decode("utf-8") for v in items]
        except UnicodeDecodeError:
            raise Bad(argument) from None
    if all(isinstance(v, str) for v in items):
        # numpy would drop a trailing NUL; str arrays have lost theirs before the call.
        if kind in ("list", "O") and any(v.endswith("\0") for v in items):
            raise Bad(argument)
        return items
    out = [whole_number(argument, v) for v in items]   # str among numbers, bool, None, 1.5
    if out and not (INT64[0] <= min(out) and max(out) <= INT64[1]) \
            and not (UINT64[0] <= min(out) and max(out) <= UINT64[1]):
        raise Bad(argument)
    return out


def reference_ratings(argument, values):
    """Ratings as float32, or Bad(argument)."""
    items, kind = elements(values)
    if kind in "bMmcUS":
        raise Bad(argument)
    out = []
    for v in items:
        if not (is_int(v) or is_float(v)):
            raise Bad(argument)
        try:
            value = float(v)
        except OverflowError:
            raise Bad(argument) from None
        with np.errstate(over="ignore"):
            # Numeric arrays are rounded by numpy's cast; Python numbers via float64.
            stored = values[len(out):len(out) + 1].astype(np.float32)[0] \
                if kind in "iuf" else np.float32(value)
        if not math.isfinite(stored):
            raise Bad(argument)
        out.append(stored)
    return out


UNIT_NANOSECONDS = {"D": 86_400 * 10**9, "h": 3_600 * 10**9, "m": 60 * 10**9, "s": 10**9,
                    "ms": 10**6, "us": 10**3, "ns": 1}


def reference_timestamps(argument, values):
    """Timestamps as Python ints (datetimes as floored Unix seconds), or Bad(argument)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        unit, step = np.datetime_data(values.dtype)
        out = []
        for count in values.view(np.int64).tolist():
            if count == INT64[0]:                         # NaT
                raise Bad(argument)
            seconds = (count * step * UNIT_NANOSECONDS[unit]) // 10**9
            if not INT64[0] <= seconds <= INT64[1]:
                raise Bad(argument)
            out.append(seconds)
        return out
    items, kind = elements(values)
    if kind in "bmcUS":
        raise Bad(argument)
    out = [whole_number(argument, v) for v in items]
    if any(not INT64[0] <= v <= INT64[1] for v in out):
        raise Bad(argument)
    return out


def reference(users, items, ratings, timestamps, duplicates, names=None,
              duplicate_word="more than one rating"):
    """{(user, item): (rating, timestamp)} as from_arrays must build it, or Bad(argument)."""
    names = names or ("users", "items", "ratings", "timestamps")
    if duplicates not in POLICIES:
        raise Bad("duplicates")
    u = reference_ids(names[0], users)
    i = reference_ids(names[1], items)
    r = reference_ratings(names[2], ratings)
    t = None if timestamps is None else reference_timestamps(names[3], timestamps)
    lengths = {len(u), len(i), len(r)} | (set() if t is None else {len(t)})
    if len(lengths) != 1:
        raise Bad(names[0])
    if not r:
        raise Bad(names[2])
    groups = {}
    for k in range(len(r)):
        groups.setdefault((u[k], i[k]), []).append((r[k], None if t is None else t[k]))
    out = {}
    for pair, given_ in groups.items():
        if len(given_) > 1 and duplicates == "error":
            raise Bad(duplicate_word)
        if duplicates == "mean":
            mean = np.float32(sum(float(v) for v, _ in given_) / len(given_))
            stamp = None if t is None else max(s for _, s in given_)
            out[pair] = (mean, stamp)
        else:
            out[pair] = given_[-1]
    return out


def as_dict(ratings):
    users, items, values = ratings.to_arrays()
    stamps = [None] * len(values) if ratings.timestamps is None else ratings.timestamps.tolist()
    return {(u, i): (v, s) for u, i, v, s in zip(users.tolist(), items.tolist(),
                                                  values.tolist(), stamps)}


def check_against_reference(fuzz_limits, build, expected_call, mean=False):
    """Run `build` under the limits and compare it with the reference `expected_call`."""
    try:
        expected = expected_call()
    except Bad as bad:
        with pytest.raises((ValueError, TypeError)) as raised:
            fuzz_limits(build, max_bytes=MEMORY_BOUND)
        assert bad.argument in str(raised.value), (bad.argument, str(raised.value))
        return None
    got = fuzz_limits(build, max_bytes=MEMORY_BOUND)
    check_invariants(got)
    got_dict = as_dict(got)
    assert got_dict.keys() == expected.keys()
    for pair, (value, stamp) in expected.items():
        got_value, got_stamp = got_dict[pair]
        assert got_stamp == stamp
        if mean:
            assert got_value == pytest.approx(float(value), rel=2e-7, abs=1e-44)
        else:
            assert got_value == float(value), pair
    return got


def check_invariants(ratings):
    """A canonical set: the public constructor, which checks everything, accepts its arrays."""
    Ratings(ratings.indptr, ratings.indices, ratings.data, ratings.user_ids, ratings.item_ids,
            ratings.timestamps)
    assert ratings.user_index(ratings.user_ids).tolist() == list(range(ratings.n_users))
    assert ratings.item_index(ratings.item_ids).tolist() == list(range(ratings.n_items))


# ---------------------------------------------------------------- strategies
small_ints = st.integers(-3, 3)
big_ints = st.one_of(st.integers(-(2**64), 2**65), st.sampled_from(
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**31, 2**31 - 1]))
id_floats = st.one_of(st.integers(-3, 3).map(float), st.floats(allow_nan=True, width=64),
                      st.sampled_from([1e20, -1e19, 2.0**63, -(2.0**63), 0.5, -0.0]))
id_strings = st.one_of(st.sampled_from(["a", "a\0", "\0", "", "é", "0", "1", "a\0b", "😀"]),
                       st.text(max_size=3))
odd_things = st.sampled_from([True, False, None, b"a", np.bool_(True), 1j, (1,)])
id_elements = st.one_of(small_ints, big_ints, id_floats, id_strings,
                        small_ints.map(np.int8), st.integers(0, 3).map(np.uint16),
                        st.integers(0, 2**64 - 1).map(np.uint64), odd_things)
#: Ids of one kind at a time, so that valid inputs are common; "mixed" finds the errors.
id_flavours = {
    "small": small_ints, "wide": st.one_of(small_ints, st.integers(-(2**63), 2**63 - 1)),
    "unsigned": st.one_of(st.integers(0, 3), st.integers(2**63, 2**64 - 1)),
    "floats": st.integers(-(2**53), 2**53).map(float),
    "strings": st.one_of(st.sampled_from(["a", "", "é", "0", "😀", "a b"]),
                         st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=3)),
    "mixed": id_elements,
}
NUMERIC_DTYPES = ["int8", "uint8", "int16", "int32", "int64", "uint32", "uint64", "float16",
                  "float32", "float64"]


@st.composite
def containers(draw, elements_, length, extra_dtypes=()):
    """A list, an object array or a typed array of `length` drawn elements."""
    values = draw(st.lists(elements_, min_size=length, max_size=length))
    form = draw(st.sampled_from(["list", "tuple", "object", "numpy", "typed"]))
    if form == "list":
        return values
    if form == "tuple":
        return tuple(values)
    if form == "object":
        array = np.empty(length, dtype=object)
        array[:] = values
        return array
    if form == "numpy":
        try:
            with np.errstate(all="ignore"):
                return np.array(values)
        except (ValueError, TypeError, OverflowError):
            return values
    dtype = draw(st.sampled_from(NUMERIC_DTYPES + ["U", "S", "bool"] + list(extra_dtypes)))
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.array(values, dtype=dtype)
    except (ValueError, TypeError, OverflowError, UnicodeEncodeError):
        return values
    if array.ndim != 1:
        return values
    return array


rating_elements = st.one_of(st.integers(-100, 100), st.floats(width=64),
                            st.floats(width=32), st.sampled_from([1e39, -1e39, 10**39, 10**400,
                                                                  FLOAT32_MAX, 3.4028235e38]),
                            st.integers(-100, 100).map(np.int16), odd_things)
good_ratings = st.one_of(st.integers(-100, 100), st.floats(-1e38, 1e38, width=64),
                         st.floats(allow_nan=False, allow_infinity=False, width=32))
stamp_elements = st.one_of(st.integers(-10**6, 10**6), big_ints, id_floats, odd_things)
good_stamps = st.one_of(st.integers(-10**6, 10**6), st.integers(*INT64),
                        st.integers(-(2**53), 2**53).map(float))


@st.composite
def timestamp_arguments(draw, length):
    kind = draw(st.sampled_from(["none", "values", "datetime"]))
    if kind == "none":
        return None
    if kind == "values":
        return draw(containers(draw(st.sampled_from([good_stamps, good_stamps, stamp_elements])),
                               length))
    unit = draw(st.sampled_from(list(UNIT_NANOSECONDS)))
    step = draw(st.sampled_from(["", "", "7"]))
    counts = draw(st.lists(st.one_of(st.integers(-10**6, 10**6),
                                     st.integers(INT64[0], INT64[1])),
                           min_size=length, max_size=length))
    return np.array(counts, dtype=np.int64).view(f"datetime64[{step}{unit}]")


@st.composite
def rating_arguments(draw):
    n = draw(st.integers(0, MAX_RATINGS))
    pools = [draw(st.lists(id_flavours[draw(st.sampled_from(list(id_flavours)))], min_size=1,
                           max_size=draw(st.sampled_from([2, 6, 40])))) for _ in range(2)]
    # Ids drawn from small pools repeat, so duplicates and every policy get exercised.
    users = draw(containers(st.sampled_from(pools[0]), n))
    items = draw(containers(st.sampled_from(pools[1]), n))
    ratings = draw(containers(draw(st.sampled_from([good_ratings, good_ratings,
                                                    rating_elements])), n))
    stamps = draw(timestamp_arguments(n))
    if draw(st.integers(0, 9)) == 0:                      # now and then, mismatched lengths
        ratings = draw(containers(rating_elements, draw(st.integers(0, MAX_RATINGS))))
    duplicates = draw(st.sampled_from(POLICIES * 3 + ("first",)))
    return users, items, ratings, stamps, duplicates


# ---------------------------------------------------------------- the properties
@given(rating_arguments())
def test_from_arrays_matches_the_reference(fuzz_limits, arguments):
    users, items, ratings, stamps, duplicates = arguments
    check_against_reference(
        fuzz_limits,
        lambda: Ratings.from_arrays(users, items, ratings, stamps, duplicates=duplicates),
        lambda: reference(users, items, ratings, stamps, duplicates),
        mean=duplicates == "mean")


@st.composite
def sparse_arguments(draw):
    n = draw(st.integers(0, MAX_RATINGS))
    huge = draw(st.booleans())
    limit = 2**40 if huge else 12
    n_rows, n_cols = draw(st.integers(1, limit)), draw(st.integers(1, limit))
    # Few distinct rows and columns, so that entries repeat (an error for COO input).
    rows = draw(st.lists(st.sampled_from(draw(st.lists(st.integers(0, n_rows - 1), min_size=1,
                                                       max_size=5))), min_size=n, max_size=n))
    cols = draw(st.lists(st.integers(0, n_cols - 1), min_size=n, max_size=n))
    values = draw(st.lists(st.one_of(st.integers(-3, 3).map(float), st.floats(-1e30, 1e30),
                                     st.floats(width=64)), min_size=n, max_size=n))
    dtype = draw(st.sampled_from(["float64", "float32", "int64"]))
    with np.errstate(all="ignore"):
        data = np.array(values, dtype=dtype) if dtype != "int64" else \
            np.array([v if math.isfinite(v) and abs(v) < 2**62 else 0.0 for v in values]
                     ).astype(np.int64)
    form = draw(st.sampled_from(["coo", "csr", "csc", "dok", "lil"] if not huge
                                else ["coo", "dok"]))
    coo = sp.coo_matrix((data, (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))),
                        shape=(n_rows, n_cols))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return coo if form == "coo" else coo.asformat(form)


def stored_entries(matrix):
    """(rows, columns, values) of what a scipy.sparse matrix stores, read in plain Python."""
    if matrix.format == "coo":
        return matrix.row.tolist(), matrix.col.tolist(), matrix.data
    if matrix.format == "dok":
        keys = list(matrix.keys())
        return ([r for r, _ in keys], [c for _, c in keys],
                np.array([matrix[key] for key in keys], dtype=matrix.dtype))
    if matrix.format == "lil":
        rows = [r for r, row in enumerate(matrix.rows) for _ in row]
        cols = [c for row in matrix.rows for c in row]
        return rows, cols, np.array([v for row in matrix.data for v in row], dtype=matrix.dtype)
    major, minor = [], []
    for m in range(len(matrix.indptr) - 1):
        for k in range(matrix.indptr[m], matrix.indptr[m + 1]):
            major.append(m)
            minor.append(int(matrix.indices[k]))
    data = matrix.data[:matrix.indptr[-1]]
    return (major, minor, data) if matrix.format == "csr" else (minor, major, data)


@given(sparse_arguments())
def test_from_sparse_matches_the_reference(fuzz_limits, matrix):
    rows, cols, data = stored_entries(matrix)

    def expected():
        if not rows:
            raise Bad("matrix")
        return reference(rows, cols, data, None, "error", names=("matrix",) * 4,
                         duplicate_word="matrix")

    got = check_against_reference(fuzz_limits, lambda: Ratings.from_sparse(matrix), expected)
    if got is not None:
        assert got.user_ids.tolist() == sorted(set(rows))
        assert got.item_ids.tolist() == sorted(set(cols))


@st.composite
def dataframe_arguments(draw):
    n = draw(st.integers(0, 12))
    names = [draw(st.sampled_from(list(ALIASES[role]) + ["stuff"])) for role in ALIASES]
    names = [draw(st.sampled_from([name, name.upper(), f" {name.title()}"])) for name in names]
    names += draw(st.lists(st.sampled_from(["extra", "uid", "score", "ts", "Item"]),
                           max_size=2))
    columns = {}
    for name in names:
        if name in columns:
            continue
        kind = draw(st.sampled_from(["ids", "ratings", "stamps", "datetimes"]))
        if kind == "ids":
            columns[name] = draw(st.lists(st.one_of(small_ints, id_strings, id_floats),
                                          min_size=n, max_size=n))
        elif kind == "ratings":
            columns[name] = draw(st.lists(st.one_of(st.integers(-5, 5), st.floats(width=64)),
                                          min_size=n, max_size=n))
        elif kind == "stamps":
            columns[name] = draw(st.lists(st.one_of(st.integers(-10**6, 10**6), id_floats),
                                          min_size=n, max_size=n))
        else:
            columns[name] = np.array(draw(st.lists(st.integers(-10**12, 10**12), min_size=n,
                                                   max_size=n)), dtype="datetime64[s]")
    keywords = {}
    for role in ALIASES:
        choice = draw(st.sampled_from([None, None, "pick", "missing"]
                                      + (["off"] if role == "timestamp" else [])))
        if choice == "pick" and columns:
            keywords[role] = draw(st.sampled_from(list(columns)))
        elif choice == "missing":
            keywords[role] = "no such column"
        elif choice == "off":
            keywords[role] = False
    duplicates = draw(st.sampled_from(POLICIES))
    return columns, keywords, duplicates


def reference_roles(names, keywords):
    """Role -> column as from_dataframe must choose it, or Bad(keyword to pass)."""
    chosen = {}
    for role, column in keywords.items():
        if column is False:
            continue
        if column not in names:
            raise Bad(f"{role}=")
        chosen[role] = column
    free = [name for name in names if name not in chosen.values()]
    for role, aliases in ALIASES.items():
        if role in chosen or keywords.get(role) is False:
            continue
        matches = [name for name in free if name.strip().lower() in aliases]
        if len(matches) > 1:
            exact = [name for name in matches if name.strip().lower() == role]
            if len(exact) != 1:
                raise Bad(f"{role}=")
            matches = exact
        if matches:
            chosen[role] = matches[0]
        elif role != "timestamp":
            raise Bad(f"{role}=")
    return chosen


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="needs pandas")
@given(dataframe_arguments())
def test_from_dataframe_matches_the_reference(fuzz_limits, arguments):
    import pandas as pd
    columns, keywords, duplicates = arguments
    df = pd.DataFrame({name: pd.Series(values, dtype=object if not isinstance(values, np.ndarray)
                                       else None) for name, values in columns.items()})

    def expected():
        roles = reference_roles(list(df.columns), keywords)
        values = {role: df[column].to_numpy() for role, column in roles.items()}
        return reference(values["user"], values["item"], values["rating"],
                         values.get("timestamp"), duplicates,
                         names=tuple(f"df[{roles.get(role)!r}]" for role in ALIASES))

    check_against_reference(
        fuzz_limits, lambda: Ratings.from_dataframe(df, duplicates=duplicates, **keywords),
        expected, mean=duplicates == "mean")
