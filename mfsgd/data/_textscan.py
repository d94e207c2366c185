"""Vectorized scanning of delimited text: field boundaries and numbers from a byte buffer.

Every function works on a whole chunk of lines at once with numpy operations, so that reading
a file creates no Python object per line or per field.  A chunk is held in a padded buffer
(:func:`padded`): ``PAD`` newline bytes, the chunk's complete lines, ``PAD`` newline bytes.
The padding lets a fixed-width window end at any field end or start at any field start.

Numbers are parsed eight bytes at a time: the (up to) eight bytes that end a field are read as
one little-endian uint64 and converted with SWAR arithmetic (a digit check and three
multiply-shift-mask steps).  Fields these fast paths do not cover (signs, exponents, spaces,
more than 16 digits, ...) are reported as not parsed, and the caller converts them with
numpy's own string casts.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PAD = 64
NEWLINE = 10

_U64 = np.uint64
_ZEROS = _U64(0x3030303030303030)     # eight ASCII '0'
_HIGH_NIBBLES = _U64(0xF0F0F0F0F0F0F0F0)
_SIXES = _U64(0x0606060606060606)
_DOTS_MINUS_ZEROS = _U64(0x1E1E1E1E1E1E1E1E)  # eight '.' ^ '0'
_LOW7 = _U64(0x7F7F7F7F7F7F7F7F)
_HIGH_BITS = _U64(0x8080808080808080)
_BYTE_INDEX = _U64(0x0706050403020100)  # byte j holds j
# _KEEP[n]: the n most significant bytes of a word, which are the last n bytes in memory.
_KEEP = np.array([0] + [(2**64 - 1) << (8 * (8 - n)) & (2**64 - 1) for n in range(1, 9)],
                 dtype=np.uint64)
_POW10 = 10.0 ** np.arange(9)
_SPACES = bytes(range(1, 33))


class FieldCountError(Exception):
    """A line of a chunk has the wrong number of fields (`line` is 0-based in the chunk)."""

    def __init__(self, line, found):
        super().__init__(line, found)
        self.line = line
        self.found = found


def padded(body):
    """The uint8 buffer ``PAD * b"\\n" + body + PAD * b"\\n"`` (body ends with a newline)."""
    return np.frombuffer(b"\n" * PAD + body + b"\n" * PAD, dtype=np.uint8)


def split_fields(buf, sep, n_columns):
    """Field boundaries of the lines in a padded buffer.

    Parameters
    ----------
    buf : ndarray of uint8
        A buffer made by :func:`padded`.
    sep : int or None
        The separator byte, or None for runs of whitespace (any byte <= 32).  Lines holding
        nothing but whitespace are blank and skipped.
    n_columns : int
        The number of fields every non-blank line must have.

    Returns
    -------
    starts, ends : ndarray of int64, shape (n_rows, n_columns)
        Positions in `buf` of the first byte and one past the last byte of each field.
    rows : ndarray of int64 or None
        0-based line (within the chunk) of each row, or None when row i is line i (no blank
        lines).
    n_lines : int
        The number of lines in the buffer, blank ones included.

    Raises
    ------
    FieldCountError
        For the first non-blank line with another number of fields.
    """
    lo, hi = PAD, len(buf) - PAD
    if sep is None:
        return _split_whitespace(buf, lo, hi, n_columns)
    segment = buf[lo:hi]
    is_delimiter = segment == NEWLINE
    is_delimiter |= segment == sep
    delimiters = np.flatnonzero(is_delimiter)
    del is_delimiter
    is_newline = segment[delimiters] == NEWLINE
    n_lines = int(np.count_nonzero(is_newline))
    field_starts = np.empty_like(delimiters)
    field_starts[0] = 0
    np.add(delimiters[:-1], 1, out=field_starts[1:])
    if len(delimiters) == n_columns * n_lines and is_newline[n_columns - 1::n_columns].all():
        rows = None
    else:
        line_of = np.cumsum(is_newline) - is_newline
        counts = np.bincount(line_of, minlength=n_lines)
        line_ends = np.flatnonzero(is_newline)
        blank = counts == 1
        if blank.any():  # one field: blank when it holds nothing but spaces and tabs
            alone = line_ends[blank]
            bounds = np.empty(2 * len(alone), dtype=np.int64)
            bounds[0::2], bounds[1::2] = field_starts[alone], delimiters[alone]
            visible = np.add.reduceat(segment > 32, bounds, dtype=np.int64)[0::2]
            visible[field_starts[alone] == delimiters[alone]] = 0  # reduceat quirk: empty
            blank[blank] = visible == 0
        bad = np.flatnonzero(~blank & (counts != n_columns))
        if bad.size:
            raise FieldCountError(int(bad[0]), int(counts[bad[0]]))
        kept = ~blank
        keep_field = kept[line_of]
        delimiters, field_starts = delimiters[keep_field], field_starts[keep_field]
        rows = np.flatnonzero(kept)
    delimiters += lo
    field_starts += lo
    return field_starts.reshape(-1, n_columns), delimiters.reshape(-1, n_columns), rows, n_lines


def _split_whitespace(buf, lo, hi, n_columns):
    space = buf[lo - 1:hi] <= 32
    starts = np.flatnonzero(space[:-1] & ~space[1:])
    ends = np.flatnonzero(~space[:-1] & space[1:])
    del space
    newlines = np.flatnonzero(buf[lo:hi] == NEWLINE)
    line_of = np.searchsorted(newlines, starts)
    counts = np.bincount(line_of, minlength=len(newlines))
    if (counts == n_columns).all():
        rows = None
    else:
        bad = np.flatnonzero((counts > 0) & (counts != n_columns))
        if bad.size:
            raise FieldCountError(int(bad[0]), int(counts[bad[0]]))
        rows = np.flatnonzero(counts)
    starts += lo
    ends += lo
    return starts.reshape(-1, n_columns), ends.reshape(-1, n_columns), rows, len(newlines)


def _words(buf):
    """An unaligned uint64 view of `buf` with a stride of one byte: word p is bytes p..p+7."""
    return np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))


def _digit_word(words, ends, n_digits, back=0):
    """The `n_digits` (0 to 8) bytes that end `back` bytes before each field end, minus
    ASCII '0', in a little-endian uint64 whose other bytes are 0; and whether those bytes are
    all digits."""
    word = words[ends - (8 + back)]
    word ^= _ZEROS                  # equals word - '0' in every digit byte
    word &= _KEEP[n_digits]
    probe = word + _SIXES           # a byte is a digit iff both it and it + 6 are < 16
    probe |= word
    probe &= _HIGH_NIBBLES
    return word, probe == 0


def _combine_digits(word):
    """The decimal value of eight digit bytes (first byte most significant).  Modifies `word`."""
    for shift, factor, mask in ((8, 10, 0x00FF00FF00FF00FF), (16, 100, 0x0000FFFF0000FFFF),
                                (32, 10000, 0x00000000FFFFFFFF)):
        high = word >> _U64(shift)
        word *= _U64(factor)
        word += high
        word &= _U64(mask)
    return word


def parse_integers(buf, starts, ends):
    """int64 values of fields written as plain decimal integers of 1 to 16 digits.

    Returns
    -------
    values : ndarray of int64
        Meaningless where `ok` is False.
    ok : ndarray of bool
        False for fields the fast path does not parse (empty, longer than 16 bytes, or with
        any byte other than a digit: a sign, a space, a decimal point, a letter).
    """
    words = _words(buf)
    lengths = ends - starts
    word, ok = _digit_word(words, ends, np.minimum(lengths, 8))
    values = _combine_digits(word)
    ok &= lengths > 0
    if lengths.max(initial=0) > 8:
        word, high_ok = _digit_word(words, ends, np.clip(lengths - 8, 0, 8), back=8)
        ok &= high_ok
        ok &= lengths <= 16
        values += _combine_digits(word) * _U64(100_000_000)
    return values.view(np.int64), ok


def parse_decimals(buf, starts, ends):
    """float64 values of fields written as unsigned decimals of at most 8 bytes ("4", "3.5").

    The digits are read as an exact integer and divided by a power of ten, so the result is
    the correctly rounded double, as from ``float(field)``.

    Returns
    -------
    values : ndarray of float64
        Meaningless where `ok` is False.
    ok : ndarray of bool
        False for fields the fast path does not parse (empty, a lone ".", longer than 8
        bytes, more than one ".", or any byte other than digits and "."), which include
        every sign, exponent, space, "nan" and "inf".
    """
    lengths = ends - starts
    n_kept = np.minimum(lengths, 8)
    word = _words(buf)[ends - 8]
    word ^= _ZEROS
    word &= _KEEP[n_kept]
    # A '.' is now 0x1E: an exact zero-byte test on word ^ 0x1E... marks it by a high bit.
    probe = word ^ _DOTS_MINUS_ZEROS
    dots = probe & _LOW7
    dots += _LOW7
    dots |= probe
    np.invert(dots, out=dots)
    dots &= _HIGH_BITS
    dots >>= _U64(7)                                # one 1 in the byte of each '.'
    has_dot = dots != 0
    single = (dots & (dots - _U64(1))) == 0
    # Digits after the '.': if the '.' is byte k, 7 - k, found in the top byte of dots * C.
    fraction = ((dots * _BYTE_INDEX) >> _U64(56)).astype(np.intp)
    # Drop the '.': move the bytes before it one place on, into its slot (a 0 comes first).
    before = (dots - _U64(1)) * has_dot
    moved = word & before
    moved <<= _U64(8)
    before |= dots * _U64(0xFF)
    np.invert(before, out=before)
    word &= before
    word |= moved
    probe = word + _SIXES
    probe |= word
    probe &= _HIGH_NIBBLES
    ok = probe == 0
    values = _combine_digits(word)
    ok &= single
    ok &= lengths > 0
    ok &= lengths <= 8
    ok &= ~(has_dot & (lengths == 1))
    return values.astype(np.float64) / _POW10[fraction], ok


def gather_strings(buf, starts, ends):
    """The fields as a fixed-width bytes array (dtype "S<width>", the width of the longest
    field), surrounding whitespace (bytes 1 to 32: space and ASCII control characters)
    removed.

    Besides the result, fields of up to ``PAD`` bytes take no further memory per byte of
    width; longer ones cost index arrays in proportion to their total length, not to the
    number of fields times the width.
    """
    lengths = ends - starts
    width = max(int(lengths.max(initial=0)), 1)
    if width <= PAD:
        table = sliding_window_view(buf, width)[starts]
        table[np.arange(width) >= lengths[:, None]] = 0
    else:  # scatter the bytes of each field into its row
        table = np.zeros((len(starts), width), dtype=np.uint8)
        first = np.cumsum(lengths) - lengths            # of each field among all bytes
        row = np.repeat(np.arange(len(starts)), lengths)
        offset = np.arange(int(lengths.sum())) - np.repeat(first, lengths)
        table[row, offset] = buf[np.repeat(starts, lengths) + offset]
    strings = table.view(f"S{width}")[:, 0]
    if np.count_nonzero((table > 0) & (table <= 32)):
        strings = np.char.strip(strings, _SPACES)
    return strings
