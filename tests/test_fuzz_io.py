"""Fuzz tests of read_ratings and load_movielens against a plain-Python reference parser.

Every generated file either reads to exactly the ratings the reference finds, or raises a
ValueError naming the file (and, when the message names a line, a line the reference finds
bad); never another exception, a hang, or more memory than MEMORY_FACTOR times the file's size
plus MEMORY_ALLOWANCE.  The "ci" Hypothesis profile runs a short fixed-seed version on every
`pytest`; ``python -m benchmarks.fuzz --minutes 10`` runs them for long with fresh seeds.

The reference follows the rules read_ratings documents, written for clarity, line by line:

- a UTF-8 byte-order mark at the start is dropped; CRLF and CR end lines like LF;
- a line longer than MAX_LINE_BYTES or holding a NUL byte is an error;
- whitespace is bytes 1 to 32; lines before the first one with another byte are skipped;
- the separator (unless given) is inferred from the first non-blank line and the non-blank
  lines after it (at most SAMPLE_LINES, within SAMPLE_BYTES);
- header="infer": the first non-blank line is a header when it names the user, item and
  rating columns, or when none of its fields is empty or a number;
- columns are inferred from the header's names, else from the field count (3 or 4);
- a line without a separator and only whitespace is blank; any other must have one field per
  column; fields are stripped of whitespace; ids must not be empty; ratings and timestamps
  follow Python's float() and int() without underscores (timestamps within int64; ratings
  finite and within float32);
- an id column is integer when every id in it is a decimal integer within int64, else text;
  text ids must fit ID_MEMORY_FACTOR times the data size (rows x longest id x 4 bytes).
"""
import contextlib
import gzip
import io as pyio
import math
import re
import zipfile
from unittest import mock

import numpy as np
import pytest
from hypothesis import event, given, note, strategies as st

import mfsgd
from mfsgd import Ratings, read_ratings
from mfsgd.data import io as mio
from mfsgd.data._columns import role_of

#: read_ratings may allocate at most MEMORY_FACTOR x the (decompressed) file size plus
#: MEMORY_ALLOWANCE bytes at peak (tracemalloc).  The factor covers string ids, which the
#: reader itself bounds at ID_MEMORY_FACTOR (32) x the size for their 4-byte-per-character
#: array, and Ratings.from_arrays' sorting of them.
MEMORY_FACTOR = 160
MEMORY_ALLOWANCE = 16 << 20
SECONDS = 30  # per call; generous for a loaded 2-core machine

BOM = b"\xef\xbb\xbf"
SPACE = bytes(range(1, 33))
ROLES = ("user", "item", "rating", "timestamp")
REQUIRED = ("user", "item", "rating")
CANDIDATES = ("\t", "::", ",", ";", "|", None)  # None: runs of whitespace
FLOAT32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103


# --- the reference parser ----------------------------------------------------------------

class RefError(Exception):
    """The reference's verdict that a file is an error: `lines` holds every line it finds
    bad (a message naming a line must name one of them); `lineless` says whether an error
    without a line (inference, empty file, duplicates, ...) was found too."""

    def __init__(self, lines, lineless):
        super().__init__(sorted(lines), lineless)
        self.lines, self.lineless = set(lines), lineless


def _is_float(text):
    if not text.isascii() or "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_int(text):
    """int value of a decimal integer (optional sign, ASCII digits) within int64, else None."""
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        return None
    sign = -1 if text.startswith("-") else 1
    value = sign * int(text.lstrip("+-").lstrip("0") or "0")  # (int() limits its digits)
    return value if -2**63 <= value < 2**63 else None


def _split(line, sep):
    """Fields of a decoded or bytes line: split on `sep`, or on runs of whitespace."""
    if sep is None:
        space = SPACE if isinstance(line, bytes) else SPACE.decode()
        stripped = line.strip(space)
        if not stripped:
            return []
        pattern = b"[\x01-\x20]+" if isinstance(line, bytes) else "[\x01-\x20]+"
        return re.split(pattern, stripped)
    return line.split(sep)


def _infer_sep(texts, n_fields):
    counts = {sep: [len(_split(text, sep)) for text in texts] for sep in CANDIDATES}
    score = {}
    for sep in CANDIDATES:
        target = n_fields if n_fields is not None else counts[sep][0]
        ok = n_fields is not None or target >= 3
        score[sep] = counts[sep].count(target) if ok else 0
    best = max(CANDIDATES, key=lambda sep: score[sep])
    if score[best]:
        return best
    for sep in CANDIDATES:
        if len(set(counts[sep])) == 1 and counts[sep][0] > 1:
            return sep
    raise RefError((), True)


def _names(fields):
    """role -> positions among header fields."""
    found = {}
    for position, field in enumerate(fields):
        role = role_of(field)
        if role is not None:
            found.setdefault(role, []).append(position)
    return found


def _looks_like_header(fields):
    found = _names(fields)
    if all(len(found.get(role, ())) == 1 for role in REQUIRED):
        return True
    space = SPACE.decode()
    return all(field.strip(space) and not _is_float(field.strip(space)) for field in fields)


def _columns(spec, header, n_fields):
    """Roles per field (raises RefError(lineless) when they cannot be had)."""
    if spec is not None:
        roles = []
        for position, entry in enumerate(spec):
            if entry is None or entry.strip() in ("", "-", "_"):
                roles.append(None)
                continue
            role = role_of(entry)
            if header is not None and entry.strip().lower() != role and position < len(header):
                seen = header[position].strip(SPACE.decode())
                if seen.lower() != entry.strip().lower() and role_of(seen) != role:
                    raise RefError((), True)
            roles.append(role)
        return tuple(roles)
    if header is not None:
        found = _names(header)
        if any(len(where) > 1 for where in found.values()):
            raise RefError((), True)
        if all(role in found for role in REQUIRED):
            roles = [None] * len(header)
            for role, (position,) in found.items():
                roles[position] = role
            return tuple(roles)
    positional = {3: REQUIRED, 4: ROLES}.get(n_fields)
    if positional is None:
        raise RefError((), True)
    if header is not None and any(positional[where[0]] != role
                                  for role, where in _names(header).items()):
        raise RefError((), True)
    return positional


def reference(raw, sep=None, columns=None, header="infer", rating_scale=None,
              encoding="utf-8"):
    """(users, items, ratings, timestamps or None) of a file's bytes, or RefError."""
    bad = set()
    text = raw[len(BOM):] if raw.startswith(BOM) else raw
    text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = text.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    ends, offset = [], 0
    for number, line in enumerate(lines, 1):
        offset += len(line) + 1
        ends.append(offset - 1)  # offset of its line break
        if len(line) > mio.MAX_LINE_BYTES or b"\0" in line:
            bad.add(number)
    first = next((k for k, line in enumerate(lines) if line.strip(SPACE)), None)
    if first is None:
        raise RefError(bad, True)  # empty
    sample = [lines[first]]
    for k in range(first + 1, len(lines)):
        if len(sample) > mio.SAMPLE_LINES or ends[k] >= ends[first] + 1 + mio.SAMPLE_BYTES:
            break
        if lines[k].strip(SPACE):
            sample.append(lines[k])
    texts = [line.decode(encoding, errors="replace") for line in sample]
    try:
        if sep is None:
            sep_text = _infer_sep(texts, None if columns is None else len(columns))
        else:
            sep_text = None if sep == r"\s+" else sep
        fields = _split(texts[0], sep_text)
        is_header = header is True or (header == "infer" and _looks_like_header(fields))
        roles = _columns(columns, fields if is_header else None, len(fields))
    except RefError as error:
        raise RefError(bad, True) from error
    sep_bytes = None if sep_text is None else sep_text.encode(encoding)
    values = {role: [] for role in roles if role}
    for k in range(first + (1 if is_header else 0), len(lines)):
        number, line = k + 1, lines[k]
        if sep_bytes is None:
            parts = _split(line.replace(b"\0", b"\1"), None)  # (NUL lines are errors anyway)
            if not parts:
                continue
        else:
            if sep_bytes not in line and not line.strip(SPACE + b"\0"):
                continue
            parts = line.split(sep_bytes)
        if len(parts) != len(roles):
            bad.add(number)
            continue
        for role, part in zip(roles, parts):
            part = part.strip(SPACE)
            if role in ("user", "item"):
                if not part:
                    bad.add(number)
                values[role].append(part)
            elif role == "rating":
                field = part.decode("latin-1")
                value = float(field) if _is_float(field) else None
                if (value is None or not math.isfinite(value) or abs(value) >= FLOAT32_OVERFLOW
                        or rating_scale is not None
                        and not rating_scale[0] <= value <= rating_scale[1]):
                    bad.add(number)
                values[role].append(value)
            elif role == "timestamp":
                value = _as_int(part.decode("latin-1"))
                if value is None:
                    bad.add(number)
                values[role].append(value)
    if bad:
        raise RefError(bad, False)
    if not values["rating"]:
        raise RefError((), True)  # a header but no ratings
    out = {}
    for role in ("user", "item"):
        ints = [_as_int(part.decode("latin-1")) for part in values[role]]
        if all(value is not None for value in ints):
            out[role] = np.array(ints, dtype=np.int64)
            continue
        width = max(len(part) for part in values[role])
        if len(values[role]) * width * 4 > mio.ID_MEMORY_FACTOR * len(raw) + mio.ID_MEMORY_ALLOWANCE:
            raise RefError((), True)
        try:
            out[role] = np.array([part.decode(encoding) for part in values[role]])
        except UnicodeDecodeError:
            raise RefError((), True) from None
    stamps = values.get("timestamp")
    return (out["user"], out["item"], np.array(values["rating"]).astype(np.float32),
            None if stamps is None else np.array(stamps, dtype=np.int64))


# --- comparing read_ratings with the reference ----------------------------------------------

def assert_same(a, b):
    for name in ("indptr", "indices", "data", "user_ids", "item_ids"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype.kind == y.dtype.kind, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.timestamps is None) == (b.timestamps is None)
    if a.timestamps is not None:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)


def expected_outcome(plain, duplicates="error", **kwargs):
    """Ratings, or RefError."""
    try:
        users, items, ratings, stamps = reference(plain, **kwargs)
    except RefError as error:
        return error
    try:
        return Ratings.from_arrays(users, items, ratings, stamps, duplicates=duplicates)
    except ValueError:
        return RefError((), True)


def check_outcome(path, expected, call, fuzz_limits, size, damaged=False):
    """Run `call` under the memory and time bounds and compare it with `expected`."""
    bound = MEMORY_FACTOR * size + MEMORY_ALLOWANCE
    try:
        got = fuzz_limits(call, max_bytes=bound, seconds=SECONDS)
    except ValueError as error:
        message = str(error)
        note(f"ValueError: {message[:500]}")
        assert str(path) in message, message
        if damaged:
            event("damaged: ValueError")
            return
        assert isinstance(expected, RefError), f"the reference reads it: {message}"
        line = re.search(rf"{re.escape(str(path))}(?::[^,]*)?, line (\d+):", message)
        if line:
            assert int(line.group(1)) in expected.lines, (message, expected)
            event("ValueError naming a bad line")
        else:
            assert expected.lineless, (message, expected)
            event("ValueError without a line")
        return
    if isinstance(expected, RefError):
        assert damaged, f"read_ratings read a file the reference refuses: {expected}"
        event("damaged: read anyway")
        return
    assert_same(got, expected)
    event("read, equal to the reference")


# pandas, when installed, is imported here: its import (35 MB) is not the reader's memory.
# Imported, it reads all but the first chunk of files with a one-byte separator.
HAVE_PANDAS = mio._pandas() is not None


@contextlib.contextmanager
def reader_limits(block, max_line, sample_lines, sample_bytes, pandas):
    """Patch the reader's sizes (small ones cross chunk boundaries and bounds often) and
    whether it may hand the rest of a file to pandas."""
    with mock.patch.multiple(mio, BLOCK_BYTES=block, MAX_LINE_BYTES=max_line,
                             SAMPLE_LINES=sample_lines, SAMPLE_BYTES=sample_bytes,
                             PANDAS_ROWS=7):
        if pandas:
            yield
        else:
            with mock.patch.object(mio, "_pandas", lambda: None):
                yield


# --- strategies -------------------------------------------------------------------------
# Valid values first: most generated files are valid, so that equality with the reference is
# what is tested most; a minority gets one or two defects.

INT_IDS = st.one_of(
    st.integers(0, 60).map(str),
    st.integers(-2**63, 2**63 - 1).map(str),
    st.sampled_from(["007", "+7", "-0", " 7", "7 ", "0" * 70 + "12", "\x0b3", "9223372036854775807",
                     "-9223372036854775808"]),
)
TEXT_IDS = st.one_of(
    st.text(st.sampled_from("abcXYZ_.-#é€日"), min_size=1, max_size=5),
    st.sampled_from(["u1", "alice", "Bob", "x" * 80, "user", "movieId", "1_0", "1.0", "+-1",
                     "9223372036854775808"]),
)
RATINGS = st.one_of(
    st.integers(1, 10).map(lambda k: f"{k / 2:g}"),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["4", "3.5", "1e0", "-2.5", " 4 ", "+1", ".5", "5.", "1E1", "3.4e38",
                     "0" * 80 + "3.25", "12345678", "123456789.5", "0.1234567890123456789",
                     "-0", "1e-50"]),
)
SCALED_RATINGS = st.sampled_from(["0.5", "1", "2.5", "5", "5.0", " 3 ", "4.", "0" * 70 + "2"])
STAMPS = st.one_of(
    st.integers(-2**63, 2**63 - 1).map(str),
    st.integers(0, 2**31).map(str),
    st.sampled_from(["+5", "-0", "0" * 70 + "9"]),
)
BAD_VALUES = {
    "user": ["", " ", "\0"], "item": ["", "\t "],
    "rating": ["", "x", "nan", "inf", "-Infinity", "4_5", "1e39", "1..5", "--1", "0x10", "٣",
               "1e", "1" * 400],
    "timestamp": ["", "1e300", "1.5", "9223372036854775808", "1_0", "x", "inf"],
}
HEADERS = {3: [["userId", "movieId", "rating"], ["u", "i", "r"], ["movieId", "rating", "userId"],
               ["user", "movie", "rating"], ["USER_ID", "item", "Score"]],
           4: [["userId", "movieId", "rating", "timestamp"], ["uid", "iid", "score", "ts"],
               ["timestamp", "rating", "movieId", "userId"], ["u", "i", "r", "t"],
               ["user", "item", "rating", "note"]],
           5: [["userId", "movieId", "rating", "timestamp", "tag"],
               ["tag", "userId", "rating", "movieId", "time"]]}
BAD_HEADERS = [["movie", "user", "rating"], ["a", "b", ""], ["1", "2", "3"],
               ["user", "userId", "rating"], ["a", "b", "c", "d", "e"], ["x"]]
SEPARATORS = {"\t": "\t", ",": ",", "::": "::", ";": ";", "|": "|", " ": r"\s+", "  ": r"\s+",
              " \t": r"\s+"}
BREAKS = ["\n", "\r\n", "\r"]
NOISE = [b"\0", b"\r", b"\n", b" ", b"\t", b",", b"::", b"_", b".", b"e", b"-", b"+", b"9",
         b"\xc3", b"\xff", b"\x1f", b"a", b"nan", b"\xef\xbb\xbf"]


def _layout(header):
    """Roles of the fields a header names (as read_ratings infers them), or None."""
    found = _names(header)
    if all(len(found.get(role, ())) == 1 for role in REQUIRED):
        roles = [None] * len(header)
        for role in ROLES:
            if role in found:
                roles[found[role][0]] = role
        return roles
    return None


@st.composite
def rating_files(draw):
    """(bytes, keyword arguments for read_ratings) of a generated rating file."""
    n_fields = draw(st.sampled_from([3, 4, 5]))
    sep = draw(st.sampled_from(sorted(SEPARATORS)))
    header = draw(st.sampled_from(HEADERS[n_fields])) if draw(st.booleans()) else None
    roles = (_layout(header) if header is not None else None) or list(ROLES[:n_fields])
    roles += [None] * (n_fields - len(roles))
    scale = (0.5, 5) if draw(st.integers(0, 4)) == 0 else None
    kinds = {"user": draw(st.sampled_from(["int", "text"])),
             "item": draw(st.sampled_from(["int", "text"]))}
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        row = []
        for role in roles:
            if role in kinds:
                row.append(draw(INT_IDS if kinds[role] == "int" else TEXT_IDS))
            elif role == "rating":
                row.append(draw(SCALED_RATINGS if scale else RATINGS))
            elif role == "timestamp":
                row.append(draw(STAMPS))
            else:
                row.append(draw(st.text(st.sampled_from("xyz#"), max_size=4)))
        rows.append(row)
    defects = draw(st.sampled_from([0, 0, 0, 1, 2]))
    for _ in range(defects if rows else 0):  # a bad value in a field
        row = draw(st.sampled_from(rows))
        position = draw(st.integers(0, n_fields - 1))
        row[position] = draw(st.sampled_from(BAD_VALUES.get(roles[position]) or ["x"]))
    lines = [sep.join(row) for row in rows]
    if header is not None:
        lines.insert(0, sep.join(header))
    if defects and draw(st.booleans()):
        lines.insert(0, sep.join(draw(st.sampled_from(BAD_HEADERS))))
    for _ in range(draw(st.integers(0, 3))):  # blank lines
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "  ", "\t"])))
    if draw(st.integers(0, 9)) == 0:  # a long line (the line bound is often lowered)
        long_line = sep.join(["1", "2", "0" * 300 + "3"] + ["4"] * (n_fields - 3))
        lines.insert(draw(st.integers(0, len(lines))), long_line)
    breaks = draw(st.lists(st.sampled_from(BREAKS), min_size=1, max_size=2))
    text = "".join(line + breaks[k % len(breaks)] for k, line in enumerate(lines))
    if text and draw(st.booleans()):
        text = text.rstrip("\r\n")  # no final line break
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:
        data = BOM + data
    for _ in range(draw(st.integers(0, 2)) if defects else 0):  # noise bytes
        position = draw(st.integers(0, len(data)))
        data = (data[:position] + draw(st.sampled_from(NOISE))
                + data[position + draw(st.integers(0, 2)):])
    kwargs = {"duplicates": draw(st.sampled_from(["last", "last", "mean", "error"]))}
    if scale:
        kwargs["rating_scale"] = scale
    if draw(st.integers(0, 3)) == 0:
        kwargs["sep"] = SEPARATORS[sep] if not defects else draw(st.sampled_from(
            sorted(set(SEPARATORS.values()))))
    how = draw(st.sampled_from(["infer", "infer", "roles", "names"] + ["other"] * (defects > 0)))
    if how == "roles" or how == "infer" and header is None and n_fields == 5:
        kwargs["columns"] = tuple(roles)
    elif how == "names":
        names = {"user": "userId", "item": "movieId", "rating": "score", "timestamp": "time"}
        kwargs["columns"] = tuple(names.get(role, draw(st.sampled_from([None, "-", "", "_"])))
                                  for role in roles)
    elif how == "other":
        kwargs["columns"] = draw(st.sampled_from([("item", "user", "rating"),
                                                  ("user", "item", "rating", "_"),
                                                  ("user", "item", None, "rating"),
                                                  ("rating", "item", "user", "timestamp", None)]))
    if header is not None:
        kwargs["header"] = draw(st.sampled_from(["infer", True] + [False] * (defects > 0)))
    else:
        kwargs["header"] = draw(st.sampled_from(["infer", False] + [True] * (defects > 0)))
    return data, kwargs


LIMITS = st.tuples(st.sampled_from([16, 61, 200, 4096, 4 << 20]),      # BLOCK_BYTES
                   st.sampled_from([40, 120, 400, 1 << 20]),            # MAX_LINE_BYTES
                   st.sampled_from([1, 3, 20]),                          # SAMPLE_LINES
                   st.sampled_from([30, 300, 1 << 16]),                  # SAMPLE_BYTES
                   st.booleans())                                        # pandas


def _reference_kwargs(kwargs):
    return {key: value for key, value in kwargs.items() if key != "duplicates"}


# --- the tests --------------------------------------------------------------------------

@pytest.mark.fuzz
@given(file=rating_files(), limits=LIMITS)
def test_read_ratings_matches_the_reference(tmp_path_factory, fuzz_limits, file, limits):
    data, kwargs = file
    path = tmp_path_factory.mktemp("fuzz") / "ratings.txt"
    path.write_bytes(data)
    note(f"data={data!r}\nkwargs={kwargs}\nlimits={limits}")
    with reader_limits(*limits):
        expected = expected_outcome(data, kwargs.get("duplicates", "error"),
                                    **_reference_kwargs(kwargs))
        note(f"expected={expected!r}")
        check_outcome(path, expected, lambda: read_ratings(path, **kwargs), fuzz_limits,
                      len(data))


def _wrap(data, kind):
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    out = pyio.BytesIO()
    compression = {"zip": zipfile.ZIP_DEFLATED, "zip-stored": zipfile.ZIP_STORED,
                   "zip-bzip2": zipfile.ZIP_BZIP2, "zip-lzma": zipfile.ZIP_LZMA}[kind]
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        archive.writestr("d/ratings.csv", data)
    return out.getvalue()


@st.composite
def damage(draw, blob):
    """`blob` truncated, with bytes overwritten, or as it is; and whether it was changed."""
    how = draw(st.sampled_from(["none", "truncate", "flip", "flip", "append"]))
    if how == "truncate" and len(blob) > 1:
        return blob[:draw(st.integers(0, len(blob) - 1))], True
    if how == "flip" and blob:
        blob = bytearray(blob)
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(blob) - 1))
            blob[position] = draw(st.integers(0, 255))
        return bytes(blob), True
    if how == "append":
        return blob + draw(st.binary(min_size=1, max_size=30)), True
    return blob, False


@pytest.mark.fuzz
@given(file=rating_files(), kind=st.sampled_from(["gzip", "zip", "zip-stored", "zip-bzip2",
                                                  "zip-lzma"]),
       data=st.data())
def test_compressed_and_damaged_files(tmp_path_factory, fuzz_limits, file, kind, data):
    plain, kwargs = file
    blob, damaged = data.draw(damage(_wrap(plain, kind)))
    path = tmp_path_factory.mktemp("fuzz") / "ratings.bin"
    path.write_bytes(blob)
    note(f"plain={plain!r}\nkwargs={kwargs}\nkind={kind} damaged={damaged}")
    expected = expected_outcome(plain, kwargs.get("duplicates", "error"),
                                **_reference_kwargs(kwargs))
    # Memory in proportion to what the file holds decompressed (at least its own size).
    check_outcome(path, expected, lambda: read_ratings(path, **kwargs), fuzz_limits,
                  max(len(plain), len(blob)), damaged=damaged)


MOVIELENS_TITLE_LINES = st.lists(
    st.one_of(st.tuples(st.one_of(st.integers(1, 30).map(str),
                                  st.sampled_from(["007", " 3 ", "²", "9" * 30, "x1"])),
                        st.text(st.sampled_from("abc é()|,\""), max_size=8))
              .map(lambda pair: f"{pair[0]}|{pair[1]}|01-Jan-1995||http://x|0|1"),
              st.sampled_from(["", "junk", "7", "|", "1|" + "t" * 300])),
    max_size=12)


@pytest.mark.fuzz
@given(lines=MOVIELENS_TITLE_LINES, ratings=st.lists(st.tuples(st.integers(1, 9),
                                                               st.integers(1, 30),
                                                               st.integers(1, 5)), min_size=1,
                                                     max_size=15, unique_by=lambda r: r[:2]),
       data=st.data())
def test_load_movielens_archives(tmp_path_factory, fuzz_limits, lines, ratings, data):
    """load_movielens on generated (and damaged) 100K-style zips: the titles a plain split
    gives and the ratings, or a ValueError naming the archive."""
    item = "".join(line + "\n" for line in lines).encode("latin-1")
    u_data = "".join(f"{u}\t{i}\t{r}\t881250949\n" for u, i, r in ratings).encode()
    out = pyio.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ml-100k/u.data", u_data)
        archive.writestr("ml-100k/u.item", item)
    blob, damaged = data.draw(damage(out.getvalue()))
    path = tmp_path_factory.mktemp("fuzz") / "ml-100k.zip"
    path.write_bytes(blob)
    titles = {}
    for line in lines:
        row = line.split("|")
        if len(row) >= 2:
            key = row[0].strip()
            number = _as_int(key) if re.fullmatch(r"[0-9]+", key) else None
            titles[key if number is None else number] = row[1]
    size = max(len(blob), len(item) + len(u_data))
    try:
        got = fuzz_limits(mfsgd.load_movielens, path, max_bytes=MEMORY_FACTOR * size
                          + MEMORY_ALLOWANCE, seconds=SECONDS)
    except ValueError as error:
        assert damaged and str(path) in str(error), str(error)
        return
    # A damaged name in the archive's directory may hide u.item: then there are no titles.
    assert dict(got.item_titles) == titles or damaged and not got.item_titles
    users, items, values = map(list, zip(*ratings))
    assert_same(got, Ratings.from_arrays(users, items, values, [881250949] * len(ratings)))


def test_reference_agrees_with_the_examples_of_the_docs():
    """The reference itself, on a few files whose outcome is known."""
    users, items, ratings, stamps = reference(b"userId,movieId,rating,timestamp\r\n1,2,3.5,9\n")
    assert users.tolist() == [1] and items.tolist() == [2] and ratings.tolist() == [3.5]
    assert stamps.tolist() == [9]
    assert reference(b"\n\n1 a 4\n")[1].tolist() == ["a"]
    for bad, lines in [(b"1,2,\n", {1}), (b"1,2,3\n1,2,4_5\n", {2}), (b"a\0,1,2\n", {1}),
                       (b"1,2,3,1e300\n", {1})]:
        with pytest.raises(RefError) as info:
            reference(bad)
        assert info.value.lines == lines
    with pytest.raises(RefError) as info:
        reference(b"1,2,3,4,5\n")
    assert info.value.lineless


@pytest.mark.slow
def test_fuzz_script_runs_the_fuzz_tests(tmp_path):
    """benchmarks/fuzz.py finds the tests by their marker, runs them and sums up (no speed or
    count is asserted, only that every test ran and nothing was found)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "fuzz.py").is_file():
        pytest.skip("not running from a source checkout")
    summary = tmp_path / "summary.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.fuzz", "--minutes", "0.1",
                           "--batch-seconds", "5", "-k", "test_fuzz_io", "--json", str(summary)],
                          cwd=root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(summary.read_text())
    names = {test.split("::")[1] for test in result["tests"]}
    assert {"test_read_ratings_matches_the_reference", "test_compressed_and_damaged_files",
            "test_load_movielens_archives"} <= names
    assert "test_fuzz_script_runs_the_fuzz_tests" not in names  # not marked fuzz
    assert all(sum(test["examples"]) > 0 for test in result["tests"].values())
    assert result["findings"] == [] and "0 findings" in done.stdout
