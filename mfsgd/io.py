"""Read rating files: delimited text (plain, gzip or zip) to a :class:`~mfsgd.Ratings`."""
import codecs
import csv
import gzip
import io
import os
import sys
import warnings
import zipfile

import numpy as np

from . import _textscan
from .ratings import DUPLICATE_POLICIES, Ratings

COLUMN_ROLES = ("user", "item", "rating", "timestamp")
# Tried in this order on the first lines; runs of whitespace come last.
SEPARATOR_CANDIDATES = ("\t", "::", ",", ";", "|")
WHITESPACE = r"\s+"
BLOCK_BYTES = 4 << 20
PANDAS_ROWS = 1 << 20     # rows per DataFrame chunk on the pandas path
PANDAS_MIN_BYTES = 64 << 20  # read this much with numpy before importing pandas for the rest
SAMPLE_LINES = 20
SAMPLE_BYTES = 1 << 16
_ASCII_PROBE = "\t\n\r ,;|:._-+0123456789eEnaNAzZ"
_PLACEHOLDERS = (b"\x1f", b"\x1e", b"\x1d", b"\x1c", b"\x01", b"\x02", b"\x03")


def read_ratings(path, sep=None, columns=("user", "item", "rating"), header="infer",
                 encoding="utf-8", rating_scale=None, duplicates="error", member=None):
    """Read a delimited text file of ratings into a :class:`~mfsgd.Ratings`.

    The file is parsed in chunks with vectorized numpy operations (no Python object per line),
    at several million lines per second; pandas is not needed.  When pandas is installed and
    the separator is one character, the rest of the file goes to pandas' C parser once pandas
    is imported (or after the first 64 MB); anything pandas would read differently from the
    numpy parser (malformed lines, string ids, ...) makes the file be read again with numpy,
    so the result never depends on pandas.  Files in encodings that are not ASCII-compatible
    (UTF-16, UTF-32) are decoded in memory at once.

    Parameters
    ----------
    path : str or os.PathLike
        A text file, a gzip-compressed text file, or a zip archive (recognized by their first
        bytes, whatever the file name).
    sep : str, optional
        Field separator, for example ``"\\t"``, ``","`` or ``"::"``; ``r"\\s+"`` for runs of
        spaces and tabs.  By default it is inferred from the first lines: the first of tab,
        ``"::"``, comma, ``";"`` and ``"|"`` that splits every one of them into
        ``len(columns)`` fields, else runs of whitespace.
    columns : sequence of str or None, default=("user", "item", "rating")
        The meaning of each field, in order: ``"user"``, ``"item"``, ``"rating"``,
        ``"timestamp"``, or None (or ``"_"``) for a field to skip.  Every line must have
        exactly ``len(columns)`` fields; "user", "item" and "rating" are required.
    header : {"infer", True, False}, default="infer"
        Whether the first line holds column names.  "infer" treats the first line as a
        header when one of its rating or timestamp fields is not a number.
    encoding : str, default="utf-8"
        Text encoding, used for the separator, the header and string ids (for example
        "latin-1" for MovieLens 100K and 1M).  A UTF-8 byte-order mark is skipped.
    rating_scale : (float, float), optional
        Lowest and highest allowed rating; a rating outside raises ValueError with its line.
    duplicates : {"error", "last", "mean"}, default="error"
        What to do with several ratings of one (user, item), see
        :meth:`Ratings.from_arrays`; "last" keeps the one latest in the file.
    member : str, optional
        The file to read inside a zip archive; may be omitted when the archive holds a
        single file.

    Returns
    -------
    Ratings
        User and item ids are integers when every id of the column is a decimal integer,
        else strings; ``timestamps`` is set when `columns` has a "timestamp".

    Raises
    ------
    ValueError
        For a malformed line (wrong number of fields, rating or timestamp not a number, empty
        id, rating outside `rating_scale`, non-finite rating) with the file name and the
        1-based line number; for an empty file or one without ratings; for a separator that
        cannot be inferred; for invalid arguments.
    TypeError
        If `path` is not a path.
    FileNotFoundError
        If `path` does not exist.

    Examples
    --------
    >>> ratings = read_ratings("u.data", columns=("user", "item", "rating", "timestamp"))
    >>> ratings = read_ratings("ratings.csv.gz", rating_scale=(0.5, 5))
    >>> ratings = read_ratings("ml-1m.zip", member="ml-1m/ratings.dat",
    ...                        columns=("user", "item", "rating", "timestamp"))
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    roles = _check_columns(columns)
    if header not in ("infer", True, False):
        raise ValueError(f"header must be 'infer', True or False, got {header!r}")
    encoding, ascii_compatible = _check_encoding(encoding)
    sep = _check_sep(sep)
    scale = _check_rating_scale(rating_scale)
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got {duplicates!r}")
    if member is not None and not isinstance(member, str):
        raise TypeError(f"member must be a str, got {type(member).__name__}")
    name = _describe(path, member)
    as_strings = set()
    use_pandas = True
    while True:
        reader = _Reader(path, member, name, roles, sep, header, encoding, ascii_compatible,
                         scale, as_strings, use_pandas)
        try:
            arrays = reader.read()
            break
        except _StringIds as restart:  # an id column turned out to hold strings: read again
            as_strings.add(restart.role)
        except _NotForPandas:  # anything unusual: read again with the numpy parser
            use_pandas = False
    try:
        return Ratings.from_arrays(arrays["user"], arrays["item"], arrays["rating"],
                                   arrays.get("timestamp"), duplicates=duplicates)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


class _StringIds(Exception):
    def __init__(self, role):
        super().__init__(role)
        self.role = role


class _NotForPandas(Exception):
    """The pandas path met something it does not handle exactly like the numpy parser."""


def _pandas():
    """The pandas module, or None when it cannot be imported."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


class _Reader:
    """One pass over a file: chunks of lines to column arrays."""

    def __init__(self, path, member, name, roles, sep, header, encoding, ascii_compatible,
                 scale, as_strings, use_pandas=False):
        self.path, self.member, self.name = path, member, name
        self.roles = roles
        self.sep = sep
        self.header = header
        self.encoding = encoding
        self.ascii_compatible = ascii_compatible
        self.scale = scale
        self.as_strings = as_strings
        self.use_pandas = use_pandas
        self.columns = {role: _Column() for role in roles if role is not None}
        self.n_rows = 0
        self.expected_bytes = None
        self.saw_line = False
        self.started = False

    def read(self):
        opener = _open_binary(self.path, self.member)
        with opener as raw:
            if opener.member is not None:
                self.name = _describe(self.path, opener.member)
            self.expected_bytes = opener.size
            stream = raw if self.ascii_compatible else self._as_utf8(raw)
            line0 = 0
            chunks = _LineChunks(stream)
            consumed = 0
            for chunk in chunks:
                if not self.started:
                    n_lines = chunk.count(b"\n")
                    chunk, skipped = self._start(chunk)
                    line0 += skipped
                    if not self.started:  # only blank lines so far
                        line0 += n_lines
                        continue
                elif self._pandas_applies(consumed):  # the rest goes to pandas
                    self._read_with_pandas(chunk + chunks.detach(), stream)
                    break
                consumed += len(chunk)
                if chunk:
                    line0 += self._parse_chunk(chunk, line0)
        if self.n_rows == 0:
            if not self.saw_line:
                raise ValueError(f"{self.name} is empty: no ratings to read")
            raise ValueError(f"{self.name} holds a header line but no ratings")
        return {role: self._decode(role, column.finish()) for role, column in self.columns.items()}

    def _expected_rows(self, rows, n_bytes):
        """Rows the whole file probably holds: the data size over the bytes per row of the
        first chunk, plus 5 %."""
        if self.expected_bytes is None or not rows or not n_bytes:
            return 0
        return int(self.expected_bytes / (n_bytes / rows) * 1.05) + 1024

    def _pandas_applies(self, consumed):
        """Whether to hand the rest of the file (after one chunk at least) to pandas: for a
        one-byte separator, when pandas is imported already or the file is large enough for
        its faster parser to repay the import (about 0.3 s)."""
        if not self.use_pandas or self.sep_byte is None or self.as_strings:
            return False
        if sys.modules.get("pandas") is None and consumed < PANDAS_MIN_BYTES:
            return False
        return _pandas() is not None

    def _read_with_pandas(self, prefix, stream):
        """Parse the rest of the file with pandas.read_csv (C engine) in chunks of rows.

        Taken only when it gives what the numpy parser would: integer ids, finite ratings
        within the scale, integer timestamps, and every non-blank line with exactly
        len(columns) fields (pandas fills short lines with NaN; counting the separators
        catches any it would not).  Anything else raises _NotForPandas, and the file is read
        again by the numpy parser, which also reports errors with their line numbers.
        """
        pd = _pandas()
        rows_before = self.n_rows
        source = _CountingStream(prefix, stream, self.sep_byte)
        used = [position for position, role in enumerate(self.roles) if role is not None]
        try:
            reader = pd.read_csv(source, sep=chr(self.sep_byte), header=None, usecols=used,
                                 engine="c", quoting=csv.QUOTE_NONE, na_filter=False,
                                 skip_blank_lines=True, chunksize=PANDAS_ROWS,
                                 encoding=self.encoding)
            with reader, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # dtype warnings: such files go to numpy
                for frame in reader:
                    self._take_frame(frame)
        except _NotForPandas:
            raise
        except Exception:  # malformed lines and the like: let the numpy parser say where
            raise _NotForPandas() from None
        if source.separators != (len(self.roles) - 1) * (self.n_rows - rows_before):
            raise _NotForPandas()

    def _take_frame(self, frame):
        for position, role in enumerate(self.roles):
            if role is None:
                continue
            values = frame[position].to_numpy()
            if role == "rating":
                if values.dtype.kind not in "iuf":
                    raise _NotForPandas()
                values = values.astype(np.float64, copy=False)
                if not np.isfinite(values).all():
                    raise _NotForPandas()
                if self.scale is not None and ((values < self.scale[0]) | (values > self.scale[1])).any():
                    raise _NotForPandas()
            elif values.dtype != np.int64:
                raise _NotForPandas()
            self.columns[role].append(values, self._expected_rows(len(frame), 0))
        self.n_rows += len(frame)
        self.saw_line = True

    def _as_utf8(self, raw):
        data = raw.read()
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError as error:
            raise ValueError(f"{self.name} is not valid {self.encoding}: {error}") from None
        self.encoding = "utf-8"
        return io.BytesIO(text.encode("utf-8"))

    def _start(self, chunk):
        """Skip a byte-order mark, infer the separator and the header from the first lines;
        return the chunk without the header and the number of lines removed."""
        if chunk.startswith(codecs.BOM_UTF8) and self.encoding in ("utf-8", "utf-8-sig"):
            chunk = chunk[len(codecs.BOM_UTF8):]
        sample = chunk[:SAMPLE_BYTES].split(b"\n")
        if len(chunk) > SAMPLE_BYTES:
            sample = sample[:-1]  # possibly cut
        lines = []  # (end offset in chunk, text) of the first non-blank lines
        offset = 0
        for raw_line in sample:
            offset += len(raw_line) + 1
            if raw_line.strip():
                lines.append((offset, raw_line.decode(self.encoding, errors="replace")))
                if len(lines) > SAMPLE_LINES:
                    break
        if not lines:
            return chunk, 0
        self.saw_line = self.started = True
        texts = [text for _, text in lines]
        if self.sep is None:
            self.sep = _infer_separator(texts, len(self.roles), self.name)
        self._prepare_separator()
        if self.header is True or (self.header == "infer" and self._looks_like_header(texts[0])):
            end = lines[0][0]
            return chunk[end:], chunk[:end].count(b"\n")
        return chunk, 0

    def _prepare_separator(self):
        if self.sep == WHITESPACE:
            self.sep_byte, self.multi = None, None
            return
        encoded = self.sep.encode(self.encoding)
        if len(encoded) == 1:
            self.sep_byte, self.multi = encoded[0], None
        else:
            self.sep_byte, self.multi = None, encoded

    def _looks_like_header(self, line):
        fields = _split_text(line, self.sep)
        if len(fields) != len(self.roles):
            return False
        for field, role in zip(fields, self.roles):
            if role in ("rating", "timestamp"):
                try:
                    float(field)
                except ValueError:
                    return True
        return False

    def _parse_chunk(self, chunk, line0):
        """Parse the lines of `chunk`, the first being line `line0` + 1; return their number."""
        sep = self.sep_byte
        if self.multi is not None:
            placeholder = next((p for p in _PLACEHOLDERS if p not in chunk), None)
            if placeholder is None:
                raise ValueError(f"{self.name}: cannot split on {self.sep!r} (the file holds "
                                 f"control characters)")
            chunk = chunk.replace(self.multi, placeholder)
            sep = placeholder[0]
        buf = _textscan.padded(chunk)
        try:
            starts, ends, rows, n_lines = _textscan.split_fields(buf, sep, len(self.roles))
        except _textscan.FieldCountError as error:
            raise ValueError(
                f"{self.name}, line {line0 + error.line + 1}: expected {len(self.roles)} fields "
                f"separated by {self.sep!r} (columns={self.roles}), found {error.found}") from None
        if len(starts) == 0:
            return n_lines
        self.saw_line = True

        def line_of(row):
            return line0 + 1 + (int(rows[row]) if rows is not None else int(row))

        for position, role in enumerate(self.roles):
            if role is None:
                continue
            start, end = starts[:, position], ends[:, position]
            if role in ("user", "item"):
                values = self._ids(role, buf, start, end, line_of)
            elif role == "rating":
                values = self._ratings(buf, start, end, line_of)
            else:
                values = self._numbers(role, np.int64, buf, start, end, line_of)
            self.columns[role].append(values, self._expected_rows(len(starts), len(chunk)))
        self.n_rows += len(starts)
        return n_lines

    def _ids(self, role, buf, start, end, line_of):
        if role not in self.as_strings:
            values, ok = _textscan.parse_integers(buf, start, end)
            if ok.all():
                return values
            bad = np.flatnonzero(~ok)
            strings = _textscan.gather_strings(buf, start[bad], end[bad])
            self._check_not_empty(role, strings, bad, line_of)
            try:
                values[bad] = strings.astype(np.int64)
                return values
            except (ValueError, OverflowError):
                if self.n_rows:
                    raise _StringIds(role) from None
                self.as_strings.add(role)
        strings = _textscan.gather_strings(buf, start, end)
        self._check_not_empty(role, strings, np.arange(len(strings)), line_of)
        return strings

    def _check_not_empty(self, role, strings, rows, line_of):
        empty = np.flatnonzero(strings == b"")
        if empty.size:
            raise ValueError(f"{self.name}, line {line_of(rows[empty[0]])}: empty {role} id")

    def _ratings(self, buf, start, end, line_of):
        values, ok = _textscan.parse_decimals(buf, start, end)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            values[bad] = self._cast("rating", np.float64, buf, start[bad], end[bad], bad, line_of)
            finite = np.isfinite(values[bad])
            if not finite.all():
                row = bad[np.flatnonzero(~finite)[0]]
                raise ValueError(f"{self.name}, line {line_of(row)}: rating {values[row]} is not "
                                 f"finite")
        if self.scale is not None:
            low, high = self.scale
            outside = np.flatnonzero((values < low) | (values > high))
            if outside.size:
                row = outside[0]
                raise ValueError(f"{self.name}, line {line_of(row)}: rating {values[row]:g} is "
                                 f"outside rating_scale=({low:g}, {high:g})")
        return values

    def _numbers(self, role, dtype, buf, start, end, line_of):
        values, ok = _textscan.parse_integers(buf, start, end)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            values[bad] = self._cast(role, dtype, buf, start[bad], end[bad], bad, line_of)
        return values

    def _cast(self, role, dtype, buf, start, end, rows, line_of):
        """numpy's own string cast of the fields the fast path left; errors name the line."""
        strings = _textscan.gather_strings(buf, start, end)
        try:
            return strings.astype(dtype)
        except (ValueError, OverflowError):
            index = _first_failure(strings, dtype)
            kind = "an integer" if dtype == np.int64 else "a number"
            text = strings[index].decode(self.encoding, errors="replace")
            raise ValueError(f"{self.name}, line {line_of(rows[index])}: {role} {text!r} is not "
                             f"{kind}") from None

    def _decode(self, role, values):
        if values.dtype.kind != "S":
            return values
        if values.size == 0 or values.view(np.uint8).max() < 128:
            return values.astype(np.str_)
        unique, inverse = np.unique(values, return_inverse=True)
        try:
            decoded = np.array([raw.decode(self.encoding) for raw in unique.tolist()])
        except UnicodeDecodeError as error:
            raise ValueError(f"{self.name}: a {role} id is not valid {self.encoding} ({error}); "
                             f"pass the file's encoding=") from None
        return decoded[inverse.ravel()]


class _Column:
    """The values of one column, chunk after chunk, in one array allocated for the expected
    number of rows (untouched capacity costs no memory) and trimmed in place at the end, so
    nothing is joined or zero-filled.  Ratings are stored as float32; bytes strings are kept
    as a list of chunks."""

    def __init__(self):
        self.array = None
        self.size = 0
        self.strings = []

    def append(self, values, expected_rows=0):
        if values.dtype.kind == "S":
            self.strings.append(values)
            return
        end = self.size + len(values)
        if self.array is None:
            dtype = np.float32 if values.dtype.kind == "f" else values.dtype
            self.array = np.empty(max(expected_rows, 4 * end, 1024), dtype=dtype)
        elif end > len(self.array):  # more rows than expected: move to a larger array
            larger = np.empty(max(2 * len(self.array), end), dtype=self.array.dtype)
            larger[:self.size] = self.array[:self.size]
            self.array = larger
        self.array[self.size:end] = values
        self.size = end

    def finish(self):
        if self.strings:
            return np.concatenate(self.strings)
        self.array.resize(self.size, refcheck=False)
        return self.array


def _first_failure(strings, dtype):
    """Index of the first element of `strings` that does not cast to `dtype`."""
    low, high = 0, len(strings)
    while high - low > 32:
        middle = (low + high) // 2
        try:
            strings[low:middle].astype(dtype)
            low = middle
        except (ValueError, OverflowError):
            high = middle
    for index in range(low, high):
        try:
            strings[index:index + 1].astype(dtype)
        except (ValueError, OverflowError):
            return index
    return low


class _LineChunks:
    """Iterator over chunks of complete lines of a binary stream (each chunk ends with a
    newline; CRLF becomes LF)."""

    def __init__(self, stream):
        self.stream = stream
        self.rest = b""  # read but not yet returned: the start of an incomplete line

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            data = self.stream.read(BLOCK_BYTES)
            if not data:
                if self.rest:
                    chunk, self.rest = self.rest + b"\n", b""
                    return _lf(chunk)
                raise StopIteration
            cut = data.rfind(b"\n")
            if cut < 0:
                self.rest += data
                continue
            chunk = self.rest + data[:cut + 1] if self.rest else data[:cut + 1]
            self.rest = data[cut + 1:]
            return _lf(chunk)

    def detach(self):
        """The bytes read from the stream but not returned yet (the stream goes on after)."""
        rest, self.rest = self.rest, b""
        return rest


class _CountingStream(io.BufferedIOBase):
    """A binary stream of `prefix` then `stream`, counting the `sep` bytes it hands out."""

    def __init__(self, prefix, stream, sep):
        super().__init__()
        self.prefix, self.stream, self.sep = prefix, stream, bytes([sep])
        self.separators = 0

    def readable(self):
        return True

    def read(self, size=-1):
        if self.prefix:
            if size is None or size < 0:
                data, self.prefix = self.prefix + self.stream.read(), b""
            else:
                data, self.prefix = self.prefix[:size], self.prefix[size:]
        else:
            data = self.stream.read(size)
        self.separators += data.count(self.sep)
        return data

    read1 = read


def _lf(chunk):
    """Line ends as LF: CRLF and lone CR (as pandas reads them) become LF."""
    if b"\r" in chunk:
        chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return chunk


def _split_text(line, sep):
    return line.split() if sep == WHITESPACE else line.split(sep)


def _infer_separator(lines, n_columns, name):
    """The candidate separator that splits the most lines into `n_columns` fields (the first
    in SEPARATOR_CANDIDATES order on ties, whitespace last), else the first that splits all of
    them into the same number (> 1) of fields."""
    candidates = SEPARATOR_CANDIDATES + (WHITESPACE,)
    counts = {sep: [len(_split_text(line, sep)) for line in lines] for sep in candidates}
    matches = {sep: counts[sep].count(n_columns) for sep in candidates}
    best = max(candidates, key=lambda sep: matches[sep])  # max keeps the first of ties
    if matches[best]:
        return best
    for sep in candidates:
        if len(set(counts[sep])) == 1 and counts[sep][0] > 1:
            return sep
    raise ValueError(f"cannot infer the field separator of {name} from its first lines "
                     f"({lines[0]!r}); pass sep=")


def _describe(path, member):
    return f"{path}:{member}" if member is not None else path


class _open_binary:
    """Context manager: the raw bytes of a plain, gzip or zip file (one member)."""

    def __init__(self, path, member):
        self.path, self.member = path, member
        self.closers = []
        self.size = None  # bytes of data to read, when known

    def __enter__(self):
        try:
            return self._open()
        except BaseException:
            self.__exit__()
            raise

    def _open(self):
        handle = open(self.path, "rb")
        self.closers.append(handle)
        magic = handle.read(4)
        handle.seek(0)
        if magic[:2] == b"\x1f\x8b":
            if self.member is not None:
                raise ValueError(f"member={self.member!r} given but {self.path} is not a zip archive")
            size = os.fstat(handle.fileno()).st_size
            if size >= 4:  # the last 4 bytes: the data size modulo 2**32
                handle.seek(-4, os.SEEK_END)
                self.size = int.from_bytes(handle.read(4), "little")
                self.size = self.size if self.size >= size else None  # else it wrapped
                handle.seek(0)
            stream = gzip.GzipFile(fileobj=handle)
        elif magic == b"PK\x03\x04" or (magic[:2] == b"PK" and zipfile.is_zipfile(handle)):
            archive = zipfile.ZipFile(handle)
            self.closers.append(archive)
            self.member = _zip_member(archive, self.member, self.path)
            self.size = archive.getinfo(self.member).file_size
            stream = archive.open(self.member)
        else:
            if self.member is not None:
                raise ValueError(f"member={self.member!r} given but {self.path} is not a zip archive")
            self.size = os.fstat(handle.fileno()).st_size
            return handle
        self.closers.append(stream)
        return stream

    def __exit__(self, *exc):
        for closer in reversed(self.closers):
            closer.close()
        return False


def _zip_member(archive, member, path):
    """The name of the data file to read in a zip archive: `member`, or its only file."""
    names = [info.filename for info in archive.infolist() if not info.is_dir()
             and not info.filename.startswith("__MACOSX/")
             and not os.path.basename(info.filename).startswith(".")]
    if member is not None:
        if member not in archive.namelist():
            raise ValueError(f"member={member!r} is not in {path} (files: {_preview(names)})")
        return member
    if len(names) != 1:
        raise ValueError(f"{path} holds {len(names)} files ({_preview(names)}); name the one to "
                         f"read with member=")
    return names[0]


def _preview(names, n=8):
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def _check_columns(columns):
    if isinstance(columns, str) or not hasattr(columns, "__iter__"):
        raise TypeError(f"columns must be a sequence of column roles, got {columns!r}")
    roles = tuple(None if role in (None, "_") else role for role in columns)
    for role in roles:
        if role is not None and role not in COLUMN_ROLES:
            raise ValueError(f"columns: {role!r} is not one of {list(COLUMN_ROLES)} or None")
    for role in COLUMN_ROLES:
        if roles.count(role) > 1:
            raise ValueError(f"columns names {role!r} more than once: {columns!r}")
    missing = [role for role in ("user", "item", "rating") if role not in roles]
    if missing:
        raise ValueError(f"columns must name 'user', 'item' and 'rating'; {missing} missing in "
                         f"{columns!r}")
    return roles


def _check_encoding(encoding):
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a str, got {type(encoding).__name__}")
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"encoding={encoding!r} is not a known text encoding") from None
    if name == "utf-8-sig":
        name = "utf-8"
    try:
        compatible = _ASCII_PROBE.encode(name) == _ASCII_PROBE.encode("ascii")
    except UnicodeEncodeError:
        compatible = False
    return name, compatible


def _check_sep(sep):
    if sep is None:
        return None
    if not isinstance(sep, str):
        raise TypeError(f"sep must be a str or None, got {type(sep).__name__}")
    if sep == "" or "\n" in sep or "\r" in sep:
        raise ValueError(f"sep must be a non-empty string without line breaks, got {sep!r}")
    return sep


def _check_rating_scale(scale):
    if scale is None:
        return None
    try:
        low, high = (float(value) for value in scale)
    except (TypeError, ValueError):
        raise TypeError(f"rating_scale must be a (lowest, highest) pair of numbers, got "
                        f"{scale!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"rating_scale must be finite with lowest <= highest, got {scale!r}")
    return low, high
