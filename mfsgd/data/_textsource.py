"""The bytes of a text file: plain, gzip, or one member of a zip archive, read as bounded chunks
of whole lines.

Damaged or unsupported archives raise ValueError naming the file, whatever the decompressor
raised; sizes an archive declares are only hints, never trusted for allocation; no line may be
longer than a bound, so that memory stays in proportion to the chunk size.
"""
import gzip
import os
import struct
import zipfile
import zlib

import numpy as np

try:
    from lzma import LZMAError
except ImportError:  # Python built without lzma: zipfile then refuses LZMA members itself
    class LZMAError(Exception):
        pass

# What the decompressors raise on damaged, truncated, encrypted or unsupported input.
ARCHIVE_ERRORS = (EOFError, OSError, zlib.error, zipfile.BadZipFile, LZMAError,
                  NotImplementedError, RuntimeError, struct.error, ValueError, IndexError,
                  KeyError, OverflowError)
# Most bytes deflate can produce per compressed byte (1032 in theory), with room to spare.
DEFLATE_MAX_RATIO = 1100


class BinarySource:
    """Context manager: the bytes of a plain, gzip or zip file (one member).

    On entering, ``stream`` is a binary stream whose ``read`` raises ValueError naming the
    file for damaged data, ``name`` names the file (``path:member`` in a zip archive) and
    ``size`` is the data size the file declares, or None (a hint: it may lie).

    Parameters
    ----------
    path : str
        The file; gzip and zip are recognized by their first bytes.
    member : str or None
        The file to read in a zip archive (may be None when it holds a single file).
    """

    def __init__(self, path, member=None):
        self.path, self.member = path, member
        self.name = describe(path, member)
        self.closers = []
        self.size = None
        self.stream = None

    def __enter__(self):
        try:
            self._open()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self):
        handle = open(self.path, "rb")
        self.closers.append(handle)
        magic = handle.read(4)
        handle.seek(0)
        if magic[:2] == b"\x1f\x8b":
            self._not_zip()
            size = os.fstat(handle.fileno()).st_size
            if size >= 18:  # the last 4 bytes: the data size modulo 2**32
                handle.seek(-4, os.SEEK_END)
                declared = int.from_bytes(handle.read(4), "little")
                self.size = declared if declared >= size else None  # else it wrapped
                handle.seek(0)
            stream = gzip.GzipFile(fileobj=handle)
            kind = "gzip file"
        elif magic == b"PK\x03\x04" or (magic[:2] == b"PK" and zipfile.is_zipfile(handle)):
            with archive_errors(self.path, "zip archive"):
                archive = zipfile.ZipFile(handle)
                self.closers.append(archive)
                self.member = zip_member(archive, self.member, self.path)
                self.name = describe(self.path, self.member)
                info = archive.getinfo(self.member)
                check_declared_size(info, self.name)
                self.size = info.file_size
                stream = archive.open(info)
            kind = "zip archive"
        else:
            self._not_zip()
            self.size = os.fstat(handle.fileno()).st_size
            self.stream = handle
            return
        self.closers.append(stream)
        self.stream = GuardedStream(stream, self.name, kind)

    def _not_zip(self):
        if self.member is not None:
            raise ValueError(f"member={self.member!r} given but {self.path} is not a zip archive")

    def __exit__(self, *exc):
        for closer in reversed(self.closers):
            try:
                closer.close()
            except ARCHIVE_ERRORS:  # closing a damaged archive must not hide the first error
                pass
        self.closers = []
        return False


class archive_errors:
    """Context manager turning decompressor errors into ValueError naming the file."""

    def __init__(self, name, kind):
        self.name, self.kind = name, kind

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None or not issubclass(kind, ARCHIVE_ERRORS) or _ours(error):
            return False
        raise ValueError(f"{self.name} is not a readable {self.kind} (damaged, truncated or "
                         f"unsupported): {type(error).__name__}: {error}") from None


def _ours(error):
    """Whether `error` is one of our own ValueErrors (already naming the file)."""
    return type(error) is ValueError and getattr(error, "mfsgd_named", False)


def named_error(message):
    """A ValueError that archive_errors passes through unchanged."""
    error = ValueError(message)
    error.mfsgd_named = True
    return error


class GuardedStream:
    """A binary stream whose reads raise ValueError naming the file on damaged data."""

    def __init__(self, stream, name, kind):
        self.stream, self.name, self.kind = stream, name, kind

    def read(self, size=-1):
        with archive_errors(self.name, self.kind):
            return self.stream.read(size)

    def close(self):
        with archive_errors(self.name, self.kind):
            self.stream.close()


def check_declared_size(info, name):
    """Refuse a zip member whose declared size its compressed size cannot hold."""
    if info.flag_bits & 0x1:  # encrypted: zipfile refuses it when opened
        return
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise named_error(f"{name} is damaged: stored with {info.compress_size:,} bytes but "
                          f"declares {info.file_size:,}")
    if (info.compress_type == zipfile.ZIP_DEFLATED
            and info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024):
        raise named_error(f"{name} is damaged: declares {info.file_size:,} bytes from "
                          f"{info.compress_size:,} compressed bytes, more than deflate can "
                          f"produce")


def zip_member(archive, member, path):
    """The name of the file to read in a zip archive: `member`, or its only file."""
    names = [info.filename for info in archive.infolist() if not info.is_dir()
             and not info.filename.startswith("__MACOSX/")
             and not os.path.basename(info.filename).startswith(".")]
    if member is not None:
        if member not in archive.namelist():
            raise named_error(f"member={member!r} is not in {path} (files: {preview(names)})")
        if archive.getinfo(member).is_dir():
            raise named_error(f"member={member!r} is a folder in {path}, not a file")
        return member
    if not names:
        raise named_error(f"{path} is a zip archive holding no file")
    if len(names) != 1:
        raise named_error(f"{path} holds {len(names)} files ({preview(names)}); name the one "
                          f"to read with member=")
    return names[0]


def describe(path, member):
    return f"{path}:{member}" if member is not None else str(path)


def preview(names, n=8):
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")


class LineChunks:
    """Iterator over chunks of whole lines of a binary stream.

    Every chunk ends with a newline; CRLF and lone CR become LF (as pandas reads them); a
    UTF-8 byte-order mark at the start is dropped.  A line longer than `max_line` bytes (its
    line break not counted) raises ValueError with its line number, as does a NUL byte when
    `allow_nul` is False.  Pieces of an unfinished line are joined once, so a long line costs
    linear time, and a chunk holds at most `block` + `max_line` bytes.

    Attributes
    ----------
    lines : int
        Lines in the chunks returned so far.
    bytes_read : int
        Bytes read from the stream so far.
    """

    def __init__(self, stream, name, block, max_line, bom=None, allow_nul=False):
        self.stream, self.name = stream, name
        self.block, self.max_line = block, max_line
        self.bom, self.allow_nul = bom, allow_nul
        self.lines = 0
        self.bytes_read = 0
        self.rest = b""    # read but not returned: the start of an unfinished line
        self.carry = b""   # a CR ending the last read: it may be half of a CRLF
        self.first_read = True

    def __iter__(self):
        return self

    def _read(self):
        """The next block, line breaks as LF, and whether the stream has ended."""
        raw = self.stream.read(self.block)
        self.bytes_read += len(raw)
        if self.first_read:
            self.first_read = False
            if self.bom and raw.startswith(self.bom):
                raw = raw[len(self.bom):]
        data = self.carry + raw if self.carry else raw
        self.carry = b""
        if raw and data.endswith(b"\r"):
            data, self.carry = data[:-1], b"\r"
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return data, not raw

    def __next__(self):
        pieces = [self.rest] if self.rest else []
        pending = len(self.rest)  # bytes of the unfinished line
        self.rest = b""
        while True:
            data, ended = self._read()
            if not data:
                if ended:
                    if not pieces:
                        raise StopIteration
                    pieces.append(b"\n")  # the last line had no line break
                    break
                continue
            first = data.find(b"\n")
            if first < 0:
                pending += len(data)
                if pending > self.max_line:
                    raise self._too_long(self.lines + 1)
                pieces.append(data)
                continue
            if pending + first > self.max_line:
                raise self._too_long(self.lines + 1)
            cut = data.rfind(b"\n")
            long_start = first_long_line(data, first + 1, cut, self.max_line)
            if long_start is not None:
                raise self._too_long(self.lines + 1 + data.count(b"\n", 0, long_start))
            if len(data) - cut - 1 > self.max_line:
                raise self._too_long(self.lines + 1 + data.count(b"\n", 0, cut + 1))
            if cut + 1 < len(data):
                self.rest = data[cut + 1:]
                data = data[:cut + 1]
            pieces.append(data)
            break
        chunk = b"".join(pieces) if len(pieces) > 1 else pieces[0]
        if not self.allow_nul and b"\0" in chunk:
            line = self.lines + 1 + chunk.count(b"\n", 0, chunk.index(b"\0"))
            raise named_error(f"{self.name}, line {line}: holds a NUL byte (a binary file, or "
                              f"text in another encoding: pass encoding=)")
        self.lines += count_lines(chunk)
        return chunk

    def next_chunk(self):
        """The next chunk, or None at the end."""
        return next(self, None)

    def detach(self):
        """The bytes read from the stream but not returned yet (the stream goes on after)."""
        rest, self.rest = self.rest + self.carry, b""
        self.carry = b""
        return rest

    def _too_long(self, line):
        return named_error(f"{self.name}, line {line}: longer than {self.max_line:,} bytes, the "
                           f"limit of a line (is this a text file with line breaks?)")


def count_lines(data):
    """The number of LF bytes in `data` (numpy counts them several times faster than
    bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))


def first_long_line(data, lo, hi, limit):
    """Start of the first line longer than `limit` among the LF-terminated lines of
    ``data[lo:hi + 1]`` (``data[hi]`` is a LF), or None.

    Probes windows of limit // 2 bytes: a line longer than `limit` holds a whole window, and
    a window with a line break is passed over at the cost of finding its first one.
    """
    if hi - lo <= limit:
        return None
    step = max(limit // 2, 1)
    start = lo
    while start < hi:
        end = min(start + step, hi)
        if data.find(b"\n", start, end) >= 0:
            start = end
            continue
        line_start = data.rfind(b"\n", lo, start) + 1 or lo
        line_end = data.find(b"\n", start, hi + 1)
        if line_end - line_start > limit:
            return line_start
        start = line_end + 1
    return None


def iter_lines(stream, name, block, max_line):
    """The lines of a binary stream without their line breaks (see LineChunks)."""
    for chunk in LineChunks(stream, name, block, max_line, allow_nul=True):
        lines = chunk.split(b"\n")
        lines.pop()  # after the last line break
        yield from lines
