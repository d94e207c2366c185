"""MovieLens rating sets: every official layout, from a folder, a zip archive or the cache.

``load_movielens("100k", download=True)`` downloads the GroupLens archive once into the cache
folder and reads it from there; ``load_movielens("path/to/ml-1m.zip")`` or
``load_movielens("path/to/ml-1m")`` reads a copy you already have.  The archive is read in
place, never extracted.
"""
import csv
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import NotCachedError
from . import _download
from ._textsource import BinarySource, archive_errors, iter_lines
from .io import MAX_LINE_BYTES, read_ratings
from .ratings import Ratings

MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/"
"""Where the archives are downloaded from; the environment variable ``MFSGD_MOVIELENS_URL``
overrides it (a folder URL ending with "/")."""

MOVIELENS = {
    "100k": ("ml-100k.zip", None),
    "1m": ("ml-1m.zip", None),
    "10m": ("ml-10m.zip", None),
    "20m": ("ml-20m.zip", None),
    "25m": ("ml-25m.zip", None),
    "latest-small": ("ml-latest-small.zip", None),
    "latest": ("ml-latest.zip", None),
}
"""Known names -> (archive file name, pinned SHA-256 or None).

No SHA-256 is pinned yet: a download is checked against the MD5 that GroupLens publishes next
to the archive (``<URL>.md5``) when it can be fetched, and the zip's own CRCs are tested; the
SHA-256 of the first download is then recorded in ``<archive>.sha256`` and every later load of
the cached archive is checked against it."""

SPLIT_FOLDS = (1, 2, 3, 4, 5, "a", "b")
TITLE_BLOCK_BYTES = 1 << 18  # movie files are read in pieces of this size


@dataclass(frozen=True)
class _Release:
    """The files of one MovieLens release family and how to read them."""

    name: str
    ratings: str        # file name of the ratings
    sep: str
    header: bool
    scale: tuple
    titles: str         # file name of the movie titles
    titles_sep: str     # None for a CSV file
    encoding: str       # of the titles


RELEASES = {
    "100k": _Release("100k", "u.data", "\t", False, (1, 5), "u.item", "|", "latin-1"),
    "1m": _Release("1m", "ratings.dat", "::", False, (1, 5), "movies.dat", "::", "latin-1"),
    "10m": _Release("10m", "ratings.dat", "::", False, (0.5, 5), "movies.dat", "::", "utf-8"),
    "csv": _Release("csv", "ratings.csv", ",", True, (0.5, 5), "movies.csv", None, "utf-8"),
}
_COLUMNS = ("user", "item", "rating", "timestamp")


def load_movielens(name_or_path, data_home=None, download=False):
    """Load a MovieLens rating set with its timestamps and movie titles.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        An existing folder or zip archive of any MovieLens release (100K, 1M, 10M, 20M, 25M,
        latest, latest-small; the layout is recognized by its files: ``u.data``,
        ``ratings.dat`` with or without ``users.dat``, ``ratings.csv``), or one of the names
        "100k", "1m", "10m", "20m", "25m", "latest-small", "latest" (also spelled
        "ml-100k"...), which is looked up in the cache folder.
    data_home : str or os.PathLike, optional
        The cache folder; default ``$MFSGD_DATA``, else ``~/mfsgd_data``.
    download : bool, default=False
        Download a named set that is not in the cache yet (from :data:`MOVIELENS_URL`, or
        ``$MFSGD_MOVIELENS_URL``).  An archive already in the cache is never downloaded
        again.

    Returns
    -------
    Ratings
        Integer user and movie ids, ``timestamps`` (Unix seconds) and ``item_titles``
        ({movie id: title}, every movie of the release, rated or not).

    Raises
    ------
    FileNotFoundError
        For a name whose archive is not in the cache while ``download=False`` (the message
        gives the expected path, the URL and how to proceed by hand), or a path that does not
        exist.
    ValueError
        For a folder or archive holding no known MovieLens layout, or malformed data.
    ConnectionError
        When a download fails (names the URL and the manual alternative).
    OSError
        When a downloaded or cached archive fails its checksum (nothing is kept).

    Examples
    --------
    >>> ratings = load_movielens("100k", download=True)   # doctest: +SKIP
    >>> ratings.item_titles[1]                              # doctest: +SKIP
    'Toy Story (1995)'
    """
    source = _resolve(name_or_path, data_home, download)
    release, prefix = _detect(source)
    ratings = _read(source, prefix + release.ratings, release)
    return _with_titles(ratings, _read_titles(source, prefix + release.titles, release))


def load_movielens_split(name_or_path, fold, data_home=None, download=False):
    """The predefined train/test splits of MovieLens 100K (``u1.base``/``u1.test`` ...).

    Parameters
    ----------
    name_or_path : str or os.PathLike
        The 100K folder or ``ml-100k.zip``, or the name "100k" (see :func:`load_movielens`).
    fold : {1, 2, 3, 4, 5, "a", "b"}
        1-5 are the five disjoint 80 %/20 % splits of the 5-fold cross-validation files
        ``u1`` ... ``u5``; "a" and "b" hold out exactly 10 ratings per user (``ua``, ``ub``).
    data_home, download
        See :func:`load_movielens`.

    Returns
    -------
    train, test : Ratings
        Read from ``u<fold>.base`` and ``u<fold>.test``, with timestamps and movie titles.
    """
    if isinstance(fold, str) and fold.isdigit():
        fold = int(fold)
    if isinstance(fold, bool) or fold not in SPLIT_FOLDS:
        raise ValueError(f"fold must be one of {list(SPLIT_FOLDS)}, got {fold!r}")
    source = _resolve(name_or_path, data_home, download)
    release, prefix = _detect(source)
    if release.name != "100k":
        raise ValueError(f"{source} is MovieLens {release.name}: predefined splits (u1.base ...) "
                         f"exist only in MovieLens 100K")
    names = [f"{prefix}u{fold}.{part}" for part in ("base", "test")]
    missing = [name for name in names if not _contains(source, name)]
    if missing:
        raise FileNotFoundError(f"{source} has no {' or '.join(missing)}")
    titles = _read_titles(source, prefix + release.titles, release)
    return tuple(_with_titles(_read(source, name, release), titles) for name in names)


def movielens_data_home(data_home=None):
    """The cache folder of downloaded archives.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Returned (with ``~`` expanded) when given.

    Returns
    -------
    pathlib.Path
        `data_home`, else ``$MFSGD_DATA``, else ``~/mfsgd_data``; it need not exist yet.
    """
    if data_home is None:
        data_home = os.environ.get("MFSGD_DATA") or Path("~") / "mfsgd_data"
    return Path(data_home).expanduser()


def _resolve(name_or_path, data_home, download):
    """An existing folder or zip archive for `name_or_path` (downloading it if asked)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a MovieLens name or a path, got "
                        f"{type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    key = str(name_or_path).lower()
    key = key[3:] if key.startswith("ml-") else key
    if key not in MOVIELENS:
        raise FileNotFoundError(f"{name_or_path!r} is neither an existing path nor a MovieLens "
                                f"name ({', '.join(MOVIELENS)})")
    archive, sha256 = MOVIELENS[key]
    target = movielens_data_home(data_home) / archive
    url = os.environ.get("MFSGD_MOVIELENS_URL") or MOVIELENS_URL
    url = url.rstrip("/") + "/" + archive
    manual = (f"Alternatively download {url} by hand and pass its path (the .zip or the "
              f"extracted folder) to load_movielens, or put the .zip at {target}.")
    if target.exists():
        _download.verify_cached(target, sha256)
        return target
    if not download:
        raise NotCachedError(f"MovieLens {key} is not in the cache: expected {target}. Pass "
                              f"download=True to download it from {url}. {manual}",
                              key, target, url)
    _download.download(url, target, manual, expected_sha256=sha256, md5_url=url + ".md5",
                       check=_check_archive)
    return target


def _check_archive(path):
    """Raise ValueError unless `path` is an intact zip archive holding a MovieLens layout."""
    if not zipfile.is_zipfile(path):
        raise ValueError("not a zip archive")
    with archive_errors(path, "zip archive"), zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()
    if damaged is not None:
        raise ValueError(f"{damaged} fails its CRC check")
    _detect(Path(path))


def _detect(source):
    """(release, prefix) of a folder or zip archive: prefix is the path of the release's folder
    inside it ("" or "name/")."""
    if source.is_dir():
        names = {str(path.relative_to(source)).replace(os.sep, "/")
                 for folder in [source, *sorted(p for p in source.iterdir() if p.is_dir())]
                 for path in folder.iterdir() if path.is_file()}
    elif zipfile.is_zipfile(source):
        with archive_errors(source, "zip archive"), zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
    else:
        raise ValueError(f"{source} is neither a folder nor a zip archive")
    for prefix in sorted({name.rpartition("/")[0] for name in names}, key=lambda p: (p.count("/"), p)):
        lead = prefix + "/" if prefix else ""
        files = {name[len(lead):] for name in names if name.rpartition("/")[0] == prefix}
        if "u.data" in files:
            return RELEASES["100k"], lead
        if "ratings.dat" in files:
            return RELEASES["1m" if "users.dat" in files else "10m"], lead
        if "ratings.csv" in files:
            return RELEASES["csv"], lead
    raise ValueError(f"{source} holds no MovieLens ratings file (u.data, ratings.dat or "
                     f"ratings.csv, at the top or one folder down)")


def _contains(source, name):
    if source.is_dir():
        return (source / name).is_file()
    with archive_errors(source, "zip archive"), zipfile.ZipFile(source) as archive:
        return name in archive.namelist()


def _read(source, name, release):
    if source.is_dir():
        return read_ratings(source / name, sep=release.sep, columns=_COLUMNS,
                            header=release.header, rating_scale=release.scale)
    return read_ratings(source, sep=release.sep, columns=_COLUMNS, header=release.header,
                        rating_scale=release.scale, member=name)


def _read_titles(source, name, release):
    """{movie id: title} from the release's movies file ({} when the file is absent).

    The file is streamed line by line (no line over MAX_LINE_BYTES), keeping only the id and
    the title of each movie, so memory follows the titles, not the file.  A line that is not
    valid in the release's encoding is read as latin-1.
    """
    if not _contains(source, name):
        return {}
    path, member = (source / name, None) if source.is_dir() else (source, name)
    with BinarySource(path, member) as opened:
        lines = (_decode_title_line(line, release.encoding) for line in
                 iter_lines(opened.stream, opened.name, TITLE_BLOCK_BYTES, MAX_LINE_BYTES))
        if release.titles_sep is None:
            rows = csv.reader(lines)
        else:
            rows = (line.split(release.titles_sep, 2) for line in lines)
        titles = {}
        try:
            if release.titles_sep is None:
                next(rows, None)  # the header
            for row in rows:
                if len(row) >= 2:
                    titles[_movie_id(row[0])] = row[1]
        except csv.Error as error:
            raise ValueError(f"{opened.name}, line {rows.line_num}: {error}") from None
    return titles


def _decode_title_line(line, encoding):
    try:
        return line.decode(encoding)
    except UnicodeDecodeError:
        return line.decode("latin-1")


def _movie_id(text):
    """A movie id as read_ratings reads ids: an int for ASCII digits within int64, else the
    text (str.isdigit alone also accepts '²', which int() refuses)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        value = int(text.lstrip("0") or "0") if len(text.lstrip("0")) <= 19 else None
        if value is not None and value < 2**63:
            return value
    return text


def _with_titles(ratings, titles):
    return Ratings(ratings.indptr, ratings.indices, ratings.data, ratings.user_ids,
                   ratings.item_ids, ratings.timestamps, item_titles=titles)
