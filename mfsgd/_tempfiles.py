"""Temporary files that are written next to their destination and renamed over it, and the
removal of the ones a killed writer left behind.

A temporary file is named ``.<destination name>.mfsgd-<12 hex digits>.<suffix>`` and its writer
holds an exclusive ``flock`` on it from its creation until it has been renamed or removed.  The
kernel drops that lock when the writer's process ends in any way (also ``kill -9``), so a file of
this naming that nobody holds a lock on was left by a dead writer.  Such a file is removed by the
next writer into the folder (:func:`remove_stale`) once it has not been modified for
:data:`STALE_AFTER_SECONDS`; that wait covers the instant between a file's creation and its lock.

Where the lock cannot be tested (no ``fcntl``, or a file system without locks), and for the
temporary files of earlier mfsgd versions (which took no lock: ``.<name>.<12 hex>.tmp`` from
``save``, ``.<name>.<8 characters>.part`` from a download), only files untouched for
:data:`UNLOCKED_STALE_AFTER_SECONDS` are removed: a live writer writes continuously, and a
download waits at most a minute for the server.  Removing a live writer's file could at worst make
its final rename fail; it could never damage the destination.
"""
import os
import re
import secrets
import time

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; there an open file cannot be removed anyway
    fcntl = None

STALE_AFTER_SECONDS = 600
UNLOCKED_STALE_AFTER_SECONDS = 24 * 3600
SUFFIXES = ("tmp", "part")
_OURS = re.compile(r"\..+\.mfsgd-[0-9a-f]{12}\.(?:tmp|part)")
# Whether an open file may be renamed or removed (not on Windows): writers then keep their lock
# until the rename, and cleaners until the removal.
RENAME_WHILE_OPEN = os.name != "nt"


def create(directory, name, suffix, mode=0o666):
    """Create, open and lock a new temporary file for the destination `name` in `directory`.

    Parameters
    ----------
    directory : str or os.PathLike
        The destination's folder; it must exist.
    name : str
        The destination's file name.
    suffix : {"tmp", "part"}
    mode : int, default=0o666
        Permission bits before the umask.

    Returns
    -------
    fd : int
        Open for reading and writing; the lock lasts until it is closed.
    path : str
    """
    if suffix not in SUFFIXES:
        raise ValueError(f"suffix must be one of {SUFFIXES}, got {suffix!r}")
    path = os.path.join(os.fspath(directory), f".{name}.mfsgd-{secrets.token_hex(6)}.{suffix}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: cleaners fall back to the file's age
            pass
    return fd, path


def remove_stale(directory, name):
    """Remove the temporary files in `directory` whose writer is gone (see the module docstring).

    Never raises: a folder that cannot be listed, or a file that cannot be opened or removed,
    is left as it is.

    Parameters
    ----------
    directory : str or os.PathLike
    name : str
        The destination being written now: temporary files of earlier mfsgd versions are only
        looked for under this name.

    Returns
    -------
    list of str
        The paths removed.
    """
    legacy = re.compile(re.escape(f".{name}.") + r"(?:[0-9a-f]{12}\.tmp|[a-z0-9_]{8}\.part)")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        ours = _OURS.fullmatch(entry.name) is not None
        if not (ours or legacy.fullmatch(entry.name)):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if age >= STALE_AFTER_SECONDS and _remove_if_unlocked(entry.path, age, ours):
            removed.append(entry.path)
    return removed


def _remove_if_unlocked(path, age, ours):
    """Remove `path` when no process holds its lock (or, unprovable, when it is old enough)."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        gone = _writer_gone(fd, ours)
        stale = gone or (gone is None and age >= UNLOCKED_STALE_AFTER_SECONDS)
        # Remove the file we looked at, not one that took its name meanwhile.
        stale = stale and os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        if stale and RENAME_WHILE_OPEN:
            os.unlink(path)  # while holding its lock
    except OSError:
        return False
    finally:
        os.close(fd)
    if stale and not RENAME_WHILE_OPEN:
        try:
            os.unlink(path)
        except OSError:
            return False
    return stale


def _writer_gone(fd, ours):
    """True when the writer of the open file `fd` is gone, False when it is alive, None when
    that cannot be known."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True if ours else None  # earlier versions took no lock: a free one proves nothing
