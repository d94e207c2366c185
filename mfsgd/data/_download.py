"""Download a file into a cache folder: streamed to a temporary file, verified, then moved into
place atomically, with its SHA-256 recorded in a sidecar file for later loads."""
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from .. import _tempfiles

TIMEOUT_SECONDS = 60
BLOCK_BYTES = 1 << 20
_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError)  # URLError is an OSError
_verified = {}  # (path, size, mtime_ns) -> sha256 already checked in this process


def sidecar(path):
    """The file next to `path` that records its SHA-256: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def sha256_of(path):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_sha256(path):
    """The SHA-256 recorded in `path`'s sidecar file, or None."""
    try:
        text = sidecar(path).read_text()
    except FileNotFoundError:
        return None
    found = re.search(r"\b[0-9a-f]{64}\b", text)
    return found.group(0) if found else None


def verify_cached(path, expected_sha256=None):
    """Check a cached file against `expected_sha256`, else against its sidecar's record.

    A file without either (placed there by hand) is accepted as it is.  A file is hashed at
    most once per process while its size and modification time stay the same.

    Raises
    ------
    OSError
        When the file's SHA-256 differs from the expected one.
    """
    expected = expected_sha256 or recorded_sha256(path)
    if expected is None:
        return
    stat = os.stat(path)
    key = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
    if _verified.get(key) == expected:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise OSError(f"{path} has SHA-256 {actual}, expected {expected}: the file is corrupted "
                      f"or was replaced; delete it (and {sidecar(path).name}) and load again")
    _verified[key] = expected


def download(url, target, manual, expected_sha256=None, md5_url=None, check=None,
             timeout=TIMEOUT_SECONDS):
    """Download `url` to `target`, verified, atomically; record its SHA-256 in a sidecar.

    The data is streamed to a temporary file in `target`'s folder, checked, and only then
    renamed to `target` (``os.replace``), so `target` is either absent or complete and
    verified.  On any failure the temporary file is removed and nothing is left behind.
    Temporary files that killed downloads or saves left in the folder are removed first
    (see :mod:`mfsgd._tempfiles`; a live writer's file is never touched).

    Parameters
    ----------
    url : str
    target : pathlib.Path
    manual : str
        What to do by hand instead, appended to error messages.
    expected_sha256 : str, optional
        Pinned SHA-256; the download must match it.
    md5_url : str, optional
        Where a published MD5 checksum of the file may be found (tried when no SHA-256 is
        pinned; skipped when unavailable).
    check : callable, optional
        ``check(path)`` raises ValueError when the downloaded file is unusable.
    timeout : float
        Seconds to wait for the server at each step.

    Returns
    -------
    str
        How the file was verified: "pinned SHA-256", "published MD5" or "unverified".

    Raises
    ------
    ConnectionError
        When the server cannot be reached or answers with an error; names the URL.
    OSError
        On a checksum mismatch or an unusable file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _tempfiles.remove_stale(target.parent, target.name)
    handle, temporary = _tempfiles.create(target.parent, target.name, "part", 0o600)
    # The temporary file stays open, and so locked, until it is renamed or removed.
    out = os.fdopen(handle, "wb")
    try:
        sha256, md5 = hashlib.sha256(), hashlib.md5()
        with _network(url, manual):
            response = urllib.request.urlopen(url, timeout=timeout)
        with response:
            while True:
                with _network(url, manual):
                    block = response.read(BLOCK_BYTES)
                if not block:
                    break
                out.write(block)
                sha256.update(block)
                md5.update(block)
        out.flush()
        method = "unverified"
        if expected_sha256 is not None:
            if sha256.hexdigest() != expected_sha256:
                raise OSError(f"the download of {url} has SHA-256 {sha256.hexdigest()}, expected "
                              f"{expected_sha256}: it is corrupted, nothing was stored. {manual}")
            method = "pinned SHA-256"
        elif md5_url is not None:
            published = _published_md5(md5_url, timeout)
            if published is not None:
                if md5.hexdigest() != published:
                    raise OSError(f"the download of {url} has MD5 {md5.hexdigest()}, but {md5_url} "
                                  f"publishes {published}: it is corrupted, nothing was stored. "
                                  f"{manual}")
                method = "published MD5"
        if check is not None:
            try:
                check(temporary)
            except ValueError as error:
                raise OSError(f"the download of {url} is not usable ({error}); nothing was "
                              f"stored. {manual}") from None
        if not _tempfiles.RENAME_WHILE_OPEN:
            out.close()
        os.replace(temporary, target)
    except BaseException:
        out.close()
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    finally:
        out.close()
    digest = sha256.hexdigest()
    note = {"pinned SHA-256": "matched the SHA-256 pinned in mfsgd",
            "published MD5": f"matched the MD5 published at {md5_url}",
            "unverified": "no checksum was available: recorded from this first download"}[method]
    sidecar(target).write_text(f"{digest}  {target.name}\n# source: {url}\n# {note}\n")
    stat = os.stat(target)
    _verified[(os.fspath(target), stat.st_size, stat.st_mtime_ns)] = digest
    return method


class _network:
    """Turn network failures inside the block into a ConnectionError naming `url`."""

    def __init__(self, url, manual):
        self.url, self.manual = url, manual

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or not isinstance(error, _NETWORK_ERRORS):
            return False
        if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
            error = error.reason
        raise ConnectionError(f"could not download {self.url}: {error}. {self.manual}") from None


def _published_md5(url, timeout):
    """The MD5 hex digest published at `url`, or None when it cannot be fetched."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read(4096).decode("ascii", errors="replace")
    except _NETWORK_ERRORS:
        return None
    found = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    return found.group(0).lower() if found else None
