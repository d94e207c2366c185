"""Read rating files: delimited text (plain, gzip or zip) to a :class:`~mfsgd.Ratings`."""
import codecs
import csv
import io
import os
import re
import sys
import warnings

import numpy as np

from . import _fields, _textscan
from ._fields import WHITESPACE
from ._textsource import BinarySource, LineChunks, count_lines, describe, first_long_line
from .ratings import DUPLICATE_POLICIES, Ratings

BLOCK_BYTES = 4 << 20
#: The longest line read_ratings accepts, in bytes, its line break not counted.
MAX_LINE_BYTES = 1 << 20
PANDAS_ROWS = 1 << 20     # rows per DataFrame chunk on the pandas path
PANDAS_MIN_BYTES = 64 << 20  # read this much with numpy before importing pandas for the rest
SAMPLE_LINES = 20         # lines after the first non-blank one used to infer the separator
SAMPLE_BYTES = 1 << 16    # ... when they lie within this many bytes after it
#: String ids are held at the width of the longest one (4 bytes per character): a column of
#: them may take at most this many times the file's size, plus ID_MEMORY_ALLOWANCE bytes.
ID_MEMORY_FACTOR = 32
ID_MEMORY_ALLOWANCE = 1 << 20
# Column arrays are sized by the rows the file's declared size suggests, but never beyond
# this many times the rows actually read: a declared size is only a hint.
CAPACITY_FACTOR = 16
_ASCII_PROBE = "\t\n\r ,;|:._-+0123456789eEnaNAzZ"
_SPACE_BYTES = _fields.SPACE_CHARS.encode("ascii")
# Smallest magnitude that rounds to infinity in float32 (half an ulp above its maximum).
_FLOAT32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103
_INTEGER = re.compile(rb"[+-]?[0-9]+")


def _byte_table(allowed):
    table = np.zeros(256, dtype=bool)
    table[0] = True  # the padding of fixed-width strings
    table[np.frombuffer(allowed, dtype=np.uint8)] = True
    return table


# Bytes a field may hold to be cast by numpy; numpy accepts exactly _fields.NUMBER (and
# [+-]?[0-9]+ for integers) among strings of these bytes.  '_', which numpy accepts between
# digits as Python does, is not among them.
_INTEGER_BYTES = _byte_table(b"+-0123456789")
_NUMBER_BYTES = _byte_table(b"+-.0123456789eEinfatyINFATY")


def read_ratings(path, sep=None, columns=None, header="infer", encoding="utf-8",
                 rating_scale=None, duplicates="error", member=None):
    """Read a delimited text file of ratings into a :class:`~mfsgd.Ratings`.

    The file is parsed in chunks with vectorized numpy operations (no Python object per line),
    at several million lines per second; pandas is not needed.  When pandas is installed and
    the separator is one character, the rest of the file goes to pandas' C parser once pandas
    is imported (or after the first 64 MB); anything pandas would read differently from the
    numpy parser (malformed lines, string ids, ...) makes the file be read again with numpy,
    so the result never depends on pandas.  Files in encodings that are not ASCII-compatible
    (UTF-16, UTF-32) are decoded in memory at once.

    Lines end with LF, CRLF or CR.  Spaces and ASCII control characters around a field are
    ignored.  A line holding nothing but such characters and no separator is blank and
    skipped.  No line may be longer than :data:`MAX_LINE_BYTES` (1 MiB).

    Parameters
    ----------
    path : str or os.PathLike
        A text file, a gzip-compressed text file, or a zip archive (recognized by their first
        bytes, whatever the file name).
    sep : str, optional
        Field separator, for example ``"\\t"``, ``","`` or ``"::"``; ``r"\\s+"`` for runs of
        whitespace.  By default it is inferred from the first non-blank line and the next ones
        (up to 20, within 64 KiB): the first of tab, ``"::"``, comma, ``";"`` and ``"|"`` that
        splits the most of them into ``len(columns)`` fields (without `columns`: into as many
        fields as the first line, at least 3), else runs of whitespace.
    columns : sequence of str or None, optional
        The meaning of each field, in order: ``"user"``, ``"item"``, ``"rating"``,
        ``"timestamp"``, or None (or ``"-"``, ``"_"``, ``""``) for a field to skip.  An entry
        may also be a header name that stands for a role (``"userId"``, ``"movieId"``,
        ``"item_id"``, ``"score"``, ``"time"`` ..., compared case-insensitively): for example
        ``("userId", "movieId", "rating", None)``; such a name must then match the header's
        field at that position.  Every line must have exactly ``len(columns)`` fields; "user",
        "item" and "rating" are required.  By default the columns are inferred: from the
        header line when its names include the user, item and rating columns (a timestamp
        column is used when named, other fields are skipped), else from the number of fields:
        3 are user, item, rating and 4 are user, item, rating, timestamp.
    header : {"infer", True, False}, default="infer"
        Whether the first non-blank line holds column names.  "infer" takes it for a header
        when it names the user, item and rating columns, or when none of its fields is empty
        or a number; so a first line with numeric ids is always data.
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
        User and item ids are integers when every id of the column is a decimal integer
        (optional sign, digits only) within the 64-bit range, else strings; ``timestamps`` is
        set when the columns include a "timestamp".

    Raises
    ------
    ValueError
        For a malformed line, with the file name and the 1-based line number: wrong number of
        fields, a rating or timestamp that is not a number (Python's float syntax without
        underscores; timestamps are 64-bit integers), an empty id, a rating that is not
        finite, beyond the float32 range or outside `rating_scale`, a NUL byte, a line longer
        than :data:`MAX_LINE_BYTES`.  For an empty file or one without ratings; a separator or
        columns that cannot be inferred (the message says what was seen and which of
        ``columns=``, ``header=`` or ``sep=`` fixes it); a damaged or unsupported gzip or zip
        file; string ids whose fixed-width array would take more than
        :data:`ID_MEMORY_FACTOR` times the file's size (names the longest id's line); invalid
        arguments.
    TypeError
        If `path` is not a path, or an argument has the wrong type.
    FileNotFoundError
        If `path` does not exist.

    Examples
    --------
    >>> ratings = read_ratings("ratings.csv")   # userId,movieId,rating,timestamp header
    >>> ratings = read_ratings("u.data", encoding="latin-1")   # 4 fields: with timestamps
    >>> ratings = read_ratings("ratings.csv.gz", rating_scale=(0.5, 5))
    >>> ratings = read_ratings("ml-1m.zip", member="ml-1m/ratings.dat")
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    spec = _fields.parse_columns(columns)
    if header not in ("infer", True, False):
        raise ValueError(f"header must be 'infer', True or False, got {header!r}")
    encoding, ascii_compatible = _check_encoding(encoding)
    sep = _check_sep(sep)
    scale = _check_rating_scale(rating_scale)
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got {duplicates!r}")
    if member is not None and not isinstance(member, str):
        raise TypeError(f"member must be a str, got {type(member).__name__}")
    as_strings = set()
    use_pandas = True
    while True:
        reader = _Reader(path, member, spec, sep, header, encoding, ascii_compatible, scale,
                         as_strings, use_pandas)
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
        raise ValueError(f"{reader.name}: {error}") from None


#: Shell commands that delete one kind of quote, for the error about quoted fields.
_UNQUOTE = {'"': "'s/\"//g'", "'": '"s/\'//g"'}


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

    def __init__(self, path, member, spec, sep, header, encoding, ascii_compatible, scale,
                 as_strings, use_pandas=False):
        self.path, self.member, self.name = path, member, describe(path, member)
        self.spec = spec
        self.roles = None  # known once the first lines are read
        self.sep = sep
        self.header = header
        self.encoding = encoding
        self.ascii_compatible = ascii_compatible
        self.scale = scale
        self.as_strings = as_strings
        self.use_pandas = use_pandas
        self.columns = {}
        self.n_rows = 0
        self.expected_bytes = None
        self.bytes_read = 0
        self.saw_line = False
        self.started = False
        self.first_line = None  # line number of the first non-blank line
        self.hint = ""  # appended to errors about field values

    def read(self):
        with BinarySource(self.path, self.member) as source:
            self.name = source.name
            self.expected_bytes = source.size
            stream = source.stream if self.ascii_compatible else self._as_utf8(source.stream)
            bom = codecs.BOM_UTF8 if self.encoding == "utf-8" else None
            self.chunks = chunks = LineChunks(stream, self.name, BLOCK_BYTES, MAX_LINE_BYTES, bom)
            line0 = 0
            consumed = 0
            for chunk in chunks:
                if not self.started:
                    chunk, skipped = self._start(chunk, line0)
                    line0 += skipped
                    if not self.started:  # only blank lines so far
                        continue
                elif self._pandas_applies(consumed):  # the rest goes to pandas
                    self._read_with_pandas(chunk + chunks.detach(), stream)
                    break
                consumed += len(chunk)
                line0 += self._parse_chunk(chunk, line0)
            self.bytes_read = chunks.bytes_read
        if self.n_rows == 0:
            if not self.saw_line:
                raise ValueError(f"{self.name} is empty: no ratings to read")
            raise ValueError(f"{self.name} holds a header line but no ratings")
        limit = ID_MEMORY_FACTOR * self.bytes_read + ID_MEMORY_ALLOWANCE
        arrays = {}
        for role, column in self.columns.items():
            values = column.finish(role, self.name, limit)
            arrays[role] = self._decode(role, values)
        return arrays

    def _expected_rows(self, rows, n_bytes):
        """Rows the whole file probably holds: the data size over the bytes per row of the
        first chunk, plus 5 %."""
        if self.expected_bytes is None or not rows or not n_bytes:
            return 0
        return int(self.expected_bytes / (n_bytes / rows) * 1.05) + 1024

    def _pandas_applies(self, consumed):
        """Whether to hand the rest of the file (after one chunk at least) to pandas: for a
        one-byte separator, when pandas is imported already or the file is large enough for
        its faster parser to repay the import."""
        if not self.use_pandas or self.sep_byte is None or self.as_strings:
            return False
        if sys.modules.get("pandas") is None and consumed < PANDAS_MIN_BYTES:
            return False
        return _pandas() is not None

    def _read_with_pandas(self, prefix, stream):
        """Parse the rest of the file with pandas.read_csv (C engine) in chunks of rows.

        Taken only when it gives what the numpy parser would: integer ids, finite ratings
        within float32 and the scale, integer timestamps, every non-blank line with exactly
        len(columns) fields (pandas fills short lines with NaN; counting the separators
        catches any it would not), no NUL byte and no over-long line.  Anything else raises
        _NotForPandas, and the file is read again by the numpy parser, which also reports
        errors with their line numbers.
        """
        pd = _pandas()
        rows_before = self.n_rows
        source = _CountingStream(prefix, stream, self.sep_byte, MAX_LINE_BYTES)
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
                if values.size and np.abs(values).max() >= _FLOAT32_OVERFLOW:
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

    def _start(self, chunk, line0):
        """Infer the separator, the header and the columns from the first non-blank line and
        the lines after it (pulling further chunks when the sample needs them).

        Returns the rest of the chunk from the first non-blank line on, with the header line
        (if any) left blank so that line numbers stay right, and the number of lines before
        it, which are skipped as blank whatever they hold (only spaces and control
        characters)."""
        visible = len(chunk) - len(chunk.lstrip(_SPACE_BYTES))
        if visible == len(chunk):
            return b"", count_lines(chunk)
        begin = chunk.rfind(b"\n", 0, visible) + 1
        first_end = chunk.index(b"\n", begin)
        lines = [chunk[begin:first_end]]
        position, budget_end = first_end + 1, first_end + 1 + SAMPLE_BYTES
        while len(lines) <= SAMPLE_LINES:
            end = chunk.find(b"\n", position)
            if end < 0:
                more = self.chunks.next_chunk()
                if more is None:
                    break
                chunk += more
                continue
            if end >= budget_end:
                break
            line = chunk[position:end]
            position = end + 1
            if line.strip(_SPACE_BYTES):
                lines.append(line)
        self.saw_line = self.started = True
        skipped = chunk.count(b"\n", 0, begin)
        self.first_line = line0 + skipped + 1
        texts = [line.decode(self.encoding, errors="replace") for line in lines]
        if self.sep is None:
            self.sep = _fields.infer_separator(texts, None if self.spec is None else len(self.spec),
                                               self.name)
        self._prepare_separator()
        fields = _fields.split_text(texts[0], self.sep)
        is_header = self.header is True or (self.header == "infer"
                                            and _fields.looks_like_header(fields))
        self.roles = _fields.resolve_columns(self.spec, fields if is_header else None,
                                             len(fields), self.name, self.sep)
        if self.spec is None:
            found, _ = _fields.match_roles(fields)
            origin = ("the header's names" if is_header and all(
                role in found for role in _fields.REQUIRED) else "the number of fields")
            self.hint = f" (columns inferred as {self.roles} from {origin}; pass columns=)"
        self.columns = {role: (_StringColumn() if role in self.as_strings else _Column())
                        for role in self.roles if role is not None}
        if is_header:
            self.first_line = None
            return b"\n" + chunk[first_end + 1:], skipped
        return chunk[begin:], skipped

    def _prepare_separator(self):
        if self.sep == WHITESPACE:
            self.sep_byte, self.multi = None, None
            return
        encoded = self.sep.encode(self.encoding)
        if len(encoded) == 1:
            self.sep_byte, self.multi = encoded[0], None
        else:
            self.sep_byte, self.multi = None, encoded

    def _parse_chunk(self, chunk, line0):
        """Parse the lines of `chunk`, the first being line `line0` + 1; return their number."""
        sep = self.sep_byte
        if self.multi is not None:  # split on a NUL byte put in its place (NUL is an error)
            chunk = chunk.replace(self.multi, b"\0")
            sep = 0
        buf = _textscan.padded(chunk)
        n_columns = len(self.roles)
        try:
            starts, ends, rows, n_lines = _textscan.split_fields(buf, sep, n_columns)
        except _textscan.FieldCountError as error:
            line = line0 + error.line + 1
            raise ValueError(
                f"{self.name}, line {line}: expected {n_columns} fields separated by "
                f"{self.sep!r} (columns={self.roles}), found {error.found}"
                f"{self._hints(line)}") from None
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
                values = self._numbers(role, True, buf, start, end, line_of)
            if isinstance(values, _Fields):
                self.columns[role].append(values, line_of)
            else:
                self.columns[role].append(values, self._expected_rows(len(starts), len(chunk)))
        self.n_rows += len(starts)
        return n_lines

    def _hints(self, line, columns=True):
        """What may fix an error on `line`: header=True for the first line, columns= when
        they were inferred and `columns` says they may be the cause."""
        first = (f" (if line {line} is a header, pass header=True)"
                 if line == self.first_line and self.header == "infer" else "")
        return first + (self.hint if columns else "")

    def _ids(self, role, buf, start, end, line_of):
        """Integer ids (int64) while every id so far is one, else the ids' text (_Fields)."""
        if role not in self.as_strings:
            values, ok = _textscan.parse_integers(buf, start, end)
            if ok.all():
                return values
            bad = np.flatnonzero(~ok)
            parsed = _integers_or_none(_Fields(buf, start[bad], end[bad]))
            if parsed is not None:
                values[bad] = parsed
                return values
            if self.n_rows:
                raise _StringIds(role)
            self.as_strings.add(role)
            self.columns[role] = _StringColumn()
        fields = _Fields(buf, start, end)
        empty = fields.empty()
        if empty.size:
            line = line_of(empty[0])
            raise ValueError(f"{self.name}, line {line}: empty {role} id"
                             f"{self._hints(line, columns=False)}")
        return fields

    def _ratings(self, buf, start, end, line_of):
        values, ok = _textscan.parse_decimals(buf, start, end)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            values[bad] = self._numbers("rating", False, buf, start[bad], end[bad],
                                        lambda row: line_of(bad[row]))
            finite = np.isfinite(values[bad])
            if not finite.all():
                row = bad[np.flatnonzero(~finite)[0]]
                line = line_of(row)
                raise ValueError(f"{self.name}, line {line}: rating {values[row]} is not "
                                 f"finite{self._hints(line, columns=False)}")
            beyond = np.flatnonzero(np.abs(values[bad]) >= _FLOAT32_OVERFLOW)
            if beyond.size:
                row = bad[beyond[0]]
                line = line_of(row)
                raise ValueError(f"{self.name}, line {line}: rating {values[row]:g} is beyond "
                                 f"the float32 range of ratings (largest "
                                 f"{float(np.finfo(np.float32).max):g})"
                                 f"{self._hints(line, columns=False)}")
        if self.scale is not None:
            low, high = self.scale
            outside = np.flatnonzero((values < low) | (values > high))
            if outside.size:
                row = outside[0]
                raise ValueError(f"{self.name}, line {line_of(row)}: rating {values[row]:g} is "
                                 f"outside rating_scale=({low:g}, {high:g})")
        return values

    def _numbers(self, role, integer, buf, start, end, line_of):
        """int64 (`integer`) or float64 values of fields; a field that is not one raises
        ValueError naming its line."""
        if not integer:
            return self._cast(role, False, _Fields(buf, start, end), line_of)
        values, ok = _textscan.parse_integers(buf, start, end)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            values[bad] = self._cast(role, True, _Fields(buf, start[bad], end[bad]),
                                     lambda row: line_of(bad[row]))
        return values

    def _cast(self, role, integer, fields, line_of):
        """numpy's own string casts of fields the fast paths left (fields over PAD bytes one
        by one in Python), after a check of their bytes that leaves numpy no syntax beyond
        _fields.NUMBER; errors name the line."""
        strings = fields.short
        if fields.long_rows.size:
            strings = strings.copy()
            strings[fields.long_rows] = b"0"
        allowed = _only(strings, _INTEGER_BYTES if integer else _NUMBER_BYTES)
        allowed &= strings != b""
        if not allowed.all():
            self._not_a_number(role, integer, fields, int(np.flatnonzero(~allowed)[0]), line_of)
        dtype = np.int64 if integer else np.float64
        try:
            values = strings.astype(dtype)
        except (ValueError, OverflowError):
            self._not_a_number(role, integer, fields, _first_failure(strings, dtype), line_of)
        for row, text in zip(fields.long_rows.tolist(), fields.long_values):
            value = _python_number(text, integer)
            if value is None:
                self._not_a_number(role, integer, fields, row, line_of)
            values[row] = value
        return values

    def _not_a_number(self, role, integer, fields, row, line_of):
        raw = fields.text(row)
        if integer and _INTEGER.fullmatch(raw):
            what = "is beyond the 64-bit integer range"
        else:
            what = "is not an integer" if integer else "is not a number"
        text = raw.decode(self.encoding, errors="replace")
        line = line_of(row)
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            # Quoted fields (Book-Crossing's "276725";"034545104X";"0") are not read; say so
            # rather than suggest columns= or header=, which cannot help.
            raise ValueError(f"{self.name}, line {line}: {role} {text} is in quotes; "
                             f"read_ratings reads fields without quotes: remove them first "
                             f"(for example: sed {_UNQUOTE[text[0]]} in.csv > out.csv)")
        raise ValueError(f"{self.name}, line {line}: {role} {_fields.shown(text, 80)} {what}"
                         f"{self._hints(line)}")

    def _decode(self, role, values):
        if values.dtype.kind != "S":
            return values
        if values.size == 0 or values.view(np.uint8).max() < 128:
            return values.astype(np.str_)
        unique, inverse = np.unique(values, return_inverse=True)
        try:
            decoded = np.array([raw.decode(self.encoding) for raw in unique.tolist()])
        except UnicodeDecodeError as error:
            raise ValueError(f"{self.name}: the {role} id {_fields.shown(error.object, 80)} is "
                             f"not valid {self.encoding} ({error.reason} at byte {error.start});"
                             f" pass the file's encoding= (for example encoding='latin-1')") \
                from None
        return decoded[inverse.ravel()]


class _Fields:
    """The text of some fields, surrounding whitespace removed: fields of up to PAD bytes in
    a fixed-width bytes array (`short`, empty where a field is longer), longer ones one by one
    (`long_rows`, `long_values`), so that one long field does not widen every row."""

    def __init__(self, buf, start, end):
        self.long_rows = np.flatnonzero(end - start > _textscan.PAD)
        self.long_values = []
        if self.long_rows.size:
            self.long_values = [bytes(buf[a:b]).strip(_SPACE_BYTES) for a, b in
                                zip(start[self.long_rows].tolist(), end[self.long_rows].tolist())]
            start = start.copy()
            start[self.long_rows] = end[self.long_rows]
        self.short = _textscan.gather_strings(buf, start, end)

    def __len__(self):
        return len(self.short)

    def empty(self):
        """Rows whose text is empty, in order."""
        empty = self.short == b""
        empty[self.long_rows] = [not value for value in self.long_values]
        return np.flatnonzero(empty)

    def text(self, row):
        where = np.flatnonzero(self.long_rows == row)
        return self.long_values[where[0]] if where.size else bytes(self.short[row])


def _only(strings, table):
    """Whether every byte of each string is allowed by `table` (256 booleans)."""
    if strings.size == 0:
        return np.ones(0, dtype=bool)
    width = strings.dtype.itemsize
    codes = np.ascontiguousarray(strings).view(np.uint8).reshape(len(strings), width)
    return table[codes].all(axis=1)


def _integers_or_none(fields):
    """int64 values of the fields when every one is a decimal integer in range, else None."""
    strings = fields.short
    if fields.long_rows.size:
        strings = strings.copy()
        strings[fields.long_rows] = b"0"
    if not (_only(strings, _INTEGER_BYTES) & (strings != b"")).all():
        return None
    try:
        values = strings.astype(np.int64)
    except (ValueError, OverflowError):
        return None
    for row, text in zip(fields.long_rows.tolist(), fields.long_values):
        value = _python_number(text, True)
        if value is None:
            return None
        values[row] = value
    return values


def _python_number(text, integer):
    """The int (in the int64 range) or float a field's bytes spell, or None."""
    if integer:
        if not _INTEGER.fullmatch(text):
            return None
        sign = b"-" if text.startswith(b"-") else b""
        digits = text.lstrip(b"+-").lstrip(b"0") or b"0"
        if len(digits) > 19:  # also keeps int() clear of its limit on digits
            return None
        value = int(sign + digits)
        return value if -2**63 <= value < 2**63 else None
    if _fields.NUMBER.fullmatch(text.decode("ascii", errors="replace")) is None:
        return None
    return float(text)


class _Column:
    """The values of one numeric column, chunk after chunk, in one array allocated for the
    expected number of rows (untouched capacity costs no memory; never more than
    CAPACITY_FACTOR times the rows read) and trimmed in place at the end, so nothing is joined
    or zero-filled.  Ratings are stored as float32."""

    def __init__(self):
        self.array = None
        self.size = 0

    def append(self, values, expected_rows=0):
        end = self.size + len(values)
        if self.array is None:
            dtype = np.float32 if values.dtype.kind == "f" else values.dtype
            capacity = min(max(expected_rows, 4 * end), CAPACITY_FACTOR * end)
            self.array = np.empty(max(capacity, 1024), dtype=dtype)
        elif end > len(self.array):  # more rows than expected: move to a larger array
            capacity = max(end, 2 * len(self.array), min(expected_rows, CAPACITY_FACTOR * end))
            larger = np.empty(capacity, dtype=self.array.dtype)
            larger[:self.size] = self.array[:self.size]
            self.array = larger
        self.array[self.size:end] = values
        self.size = end

    def finish(self, role, name, limit):
        self.array.resize(self.size, refcheck=False)
        return self.array


class _StringColumn:
    """The ids of one column as text, chunk after chunk (_Fields), joined at the end into one
    fixed-width bytes array once its size is known to be within bounds."""

    def __init__(self):
        self.parts = []  # (first row, _Fields)
        self.size = 0
        self.width = 0
        self.width_line = None

    def append(self, fields, line_of):
        if len(fields.short):
            lengths = np.char.str_len(fields.short)
            widest = int(np.argmax(lengths))
            if lengths[widest] > self.width:
                self.width, self.width_line = int(lengths[widest]), line_of(widest)
        for row, value in zip(fields.long_rows.tolist(), fields.long_values):
            if len(value) > self.width:
                self.width, self.width_line = len(value), line_of(row)
        self.parts.append((self.size, fields))
        self.size += len(fields)

    def finish(self, role, name, limit):
        """The ids as one "S<width>" array; ValueError when it (as str, 4 bytes per
        character) would take more than `limit` bytes."""
        width = max(self.width, 1)
        if self.size * width * 4 > limit:
            raise ValueError(
                f"{name}, line {self.width_line}: this {role} id is {self.width:,} bytes long; "
                f"string ids are held at the width of the longest one, so {self.size:,} of them "
                f"would take {self.size * width * 4 / 2**20:,.1f} MiB, more than "
                f"{ID_MEMORY_FACTOR} times the file's size: shorten or renumber the ids")
        out = np.empty(self.size, dtype=f"S{width}")
        for first, fields in self.parts:
            out[first:first + len(fields)] = fields.short
            if fields.long_rows.size:
                out[first + fields.long_rows] = fields.long_values
        self.parts = []
        return out


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


class _CountingStream(io.BufferedIOBase):
    """A binary stream of `prefix` then `stream`, counting the `sep` bytes it hands out, and
    raising _NotForPandas on a NUL byte or a line longer than `max_line` (which the numpy
    parser reports as errors)."""

    def __init__(self, prefix, stream, sep, max_line):
        super().__init__()
        self.prefix, self.stream, self.sep = prefix, stream, bytes([sep])
        self.max_line = max_line
        self.separators = 0
        self.run = 0  # bytes of the unfinished line

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
        self._check(data)
        return data

    read1 = read

    def _check(self, data):
        if b"\0" in data:
            raise _NotForPandas()
        probe = data.replace(b"\r", b"\n") if b"\r" in data else data
        first = probe.find(b"\n")
        if first < 0:
            self.run += len(probe)
            if self.run > self.max_line:
                raise _NotForPandas()
            return
        last = probe.rfind(b"\n")
        if (self.run + first > self.max_line or len(probe) - last - 1 > self.max_line
                or first_long_line(probe, first + 1, last, self.max_line) is not None):
            raise _NotForPandas()
        self.run = len(probe) - last - 1


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
