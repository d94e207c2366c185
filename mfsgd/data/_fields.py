"""What the fields of a delimited rating file hold: the `columns` argument of
:func:`mfsgd.read_ratings`, the separator and header line inferred from the first lines, and
the columns inferred from a header's names or from the number of fields.

Everything here works on the decoded first lines of a file (a few dozen at most); the bulk of
the file is parsed by :mod:`mfsgd.data._textscan`.
"""
import re

from ._columns import ROLES, match_roles, role_of

#: Entries of `columns` that mean "skip this field".
SKIP_MARKERS = ("", "-", "_")
#: Columns inferred from the number of fields of a file without a usable header.
BY_FIELD_COUNT = {3: ("user", "item", "rating"), 4: ("user", "item", "rating", "timestamp")}
REQUIRED = ("user", "item", "rating")
# Tried in this order on the first lines; runs of whitespace come last.
SEPARATOR_CANDIDATES = ("\t", "::", ",", ";", "|")
WHITESPACE = r"\s+"
#: What surrounds a field and separates fields under WHITESPACE: ASCII space and the ASCII
#: control characters (NUL excluded: a NUL byte is an error).
SPACE_CHARS = "".join(map(chr, range(1, 33)))
_SPACE_RUN = re.compile(f"[{re.escape(SPACE_CHARS)}]+")
#: A number as a rating or timestamp field may spell it (Python's float() syntax without
#: underscores, after surrounding whitespace is removed).
NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                    r"|inf|infinity|nan)", re.IGNORECASE | re.ASCII)


def parse_columns(columns):
    """The `columns` argument as a tuple of (role or None, name or None) per field, or None.

    Parameters
    ----------
    columns : sequence of str or None, or None
        One entry per field: a role ("user", "item", "rating", "timestamp"), a column name
        that stands for one (see :mod:`mfsgd.data._columns`, for example "userId"), or a skip
        marker (None, "", "-", "_").  None: infer the columns from the file.

    Returns
    -------
    tuple of (str or None, str or None), or None
        For each field its role (None to skip it) and, when the entry was a column name
        rather than a role, that name (checked against the header line, if any).

    Raises
    ------
    TypeError
        If `columns` is not a sequence, or an entry is neither a str nor None.
    ValueError
        For an unknown entry, a role given twice, or a missing user, item or rating.
    """
    if columns is None:
        return None
    if isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__"):
        raise TypeError(f"columns must be a sequence of column roles or names (or None to "
                        f"infer them), got {columns!r}")
    entries = []
    for entry in columns:
        if entry is not None and not isinstance(entry, str):
            raise TypeError(f"columns entries must be str or None, got {entry!r} in {columns!r}")
        if entry is None or entry.strip() in SKIP_MARKERS:
            entries.append((None, None))
            continue
        role = role_of(entry)
        if role is None:
            raise ValueError(f"columns: {entry!r} is not one of {list(ROLES)}, a column name that "
                             f"stands for one (such as 'userId', 'movieId', 'score', 'time'), or "
                             f"a field to skip (None, '-', '_' or '')")
        entries.append((role, None if entry.strip().lower() == role else entry))
    roles = [role for role, _ in entries]
    for role in ROLES:
        if roles.count(role) > 1:
            raise ValueError(f"columns names {role!r} more than once: {columns!r}")
    missing = [role for role in REQUIRED if role not in roles]
    if missing:
        raise ValueError(f"columns must name 'user', 'item' and 'rating'; {missing} missing in "
                         f"{columns!r}")
    return tuple(entries)


def split_text(line, sep):
    """The fields of a decoded line, as the byte parser splits them (whitespace: runs of
    SPACE_CHARS; surrounding whitespace is not removed from the fields here)."""
    if sep == WHITESPACE:
        stripped = line.strip(SPACE_CHARS)
        return _SPACE_RUN.split(stripped) if stripped else []
    return line.split(sep)


def is_number(field):
    """Whether a field spells a number (see NUMBER)."""
    return NUMBER.fullmatch(field.strip(SPACE_CHARS)) is not None


def infer_separator(lines, n_fields, name):
    """The separator of a file from its first non-blank lines.

    With `n_fields` known (from `columns`), the candidate that splits the most lines into
    `n_fields` fields; else the one that splits the most lines into as many fields as the
    first line, when that is at least 3 (user, item, rating).  Ties go to the first in
    SEPARATOR_CANDIDATES order, whitespace last.  When no candidate qualifies, the first that
    splits every line into the same number (> 1) of fields, so that the error that follows
    names the field count; else ValueError.
    """
    candidates = SEPARATOR_CANDIDATES + (WHITESPACE,)
    counts = {sep: [len(split_text(line, sep)) for line in lines] for sep in candidates}
    if n_fields is None:
        matches = {sep: counts[sep].count(counts[sep][0]) if counts[sep][0] >= 3 else 0
                   for sep in candidates}
    else:
        matches = {sep: counts[sep].count(n_fields) for sep in candidates}
    best = max(candidates, key=lambda sep: matches[sep])  # max keeps the first of ties
    if matches[best]:
        return best
    for sep in candidates:
        if len(set(counts[sep])) == 1 and counts[sep][0] > 1:
            return sep
    raise ValueError(f"cannot infer the field separator of {name} from its first lines "
                     f"({shown(lines[0])}); pass sep=")


def looks_like_header(fields):
    """Whether a first line (split into fields) is a header under header="infer".

    It is when it names the user, item and rating columns (see :mod:`mfsgd.data._columns`), or
    when none of its fields is empty or a number.  So a first line with an empty or
    unparsable rating but numeric ids is data (and an error), never a header.
    """
    found, _ = match_roles(fields)
    if all(role in found for role in REQUIRED):
        return True
    return all(field.strip(SPACE_CHARS) and not is_number(field) for field in fields)


def resolve_columns(spec, header, n_fields, name, sep):
    """The role (or None) of every field.

    Parameters
    ----------
    spec : tuple or None
        From :func:`parse_columns`; None to infer the columns.
    header : list of str or None
        The header line's fields, when the file has one.
    n_fields : int
        The number of fields of the first line (the header, if any).
    name : str
        The file, for messages.
    sep : str
        The separator, for messages.

    Returns
    -------
    tuple of str or None

    Raises
    ------
    ValueError
        When a column name in `spec` disagrees with the header, or the columns cannot be
        inferred; the message shows what was seen and which argument fixes it.
    """
    if spec is not None:
        if header is not None:
            _check_names(spec, header, name)
        return tuple(role for role, _ in spec)
    if header is not None:
        found, clashes = match_roles(header)
        if clashes:
            role, where = next(iter(clashes.items()))
            raise ValueError(
                f"cannot infer the columns of {name}: its header {shown(header)} names the "
                f"{role} column more than once (fields {', '.join(str(p + 1) for p in where)}); "
                f"pass columns= with one entry per field, for example "
                f"columns={_example(len(header))}")
        if all(role in found for role in REQUIRED):
            roles = [None] * len(header)
            for role, position in found.items():
                roles[position] = role
            return tuple(roles)
    positional = BY_FIELD_COUNT.get(n_fields)
    if positional is None:
        seen = (f"its header {shown(header)}" if header is not None
                else f"its first line has {n_fields} field{'s' if n_fields != 1 else ''}")
        named = "" if header is None else (" and does not name the user, item and rating "
                                           "columns (as userId, movieId, rating ... would)")
        raise ValueError(
            f"cannot infer the columns of {name}: {seen} separated by {sep!r}{named}, where 3 "
            f"(user, item, rating) or 4 (user, item, rating, timestamp) are inferred; pass "
            f"columns= with one entry per field (None to skip one), for example "
            f"columns={_example(n_fields)}, or sep= if {sep!r} is not the separator")
    if header is not None:
        found, _ = match_roles(header)
        wrong = sorted((position, role) for role, position in found.items()
                       if positional[position] != role)
        if wrong:
            position, role = wrong[0]
            raise ValueError(
                f"cannot infer the columns of {name}: its header {shown(header)} names {role} "
                f"in field {position + 1} but does not name all of user, item and rating, and "
                f"{n_fields} fields mean {positional}; pass columns= with one entry per field, "
                f"for example columns={_example(n_fields)}")
    return positional


def _check_names(spec, header, name):
    """Column names in `columns` must match the header's field at their position (or name
    the same role)."""
    for position, (role, given) in enumerate(spec):
        if given is None or position >= len(header):
            continue
        seen = header[position].strip(SPACE_CHARS)
        if seen.lower() != given.strip().lower() and role_of(seen) != role:
            raise ValueError(
                f"{name}: columns names field {position + 1} {given!r}, but the header has "
                f"{seen!r} there (header: {shown(header)}); give one entry per field in the "
                f"header's order")


def _example(n_fields):
    roles = BY_FIELD_COUNT[4][:min(n_fields, 4)]
    return repr(tuple(roles) + (None,) * max(n_fields - 4, 0)) if n_fields >= 3 \
        else "('user', 'item', 'rating')"


def shown(value, limit=200):
    """repr of a line or header for a message, cut to about `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"
