"""Read an untrusted .npz archive with bounded memory: every name, header and declared size is
checked before any array data is read, and the data is read in pieces of at most 1 MiB.

Only what ``np.savez`` and ``np.savez_compressed`` write is read: members ``<name>.npy``, stored
or deflated, not encrypted, each one array of booleans, integers, floats or unicode strings (no
objects, records or pickles).  The members may declare at most :data:`MAX_EXPANSION` times the
archive's size on disk in all, so a small file can never make the reader allocate much memory;
a file written by ``np.savez`` declares about its own size.
"""
import ast
import contextlib
import math
import os
import struct
import zipfile
import zlib

import numpy as np

MAX_EXPANSION = 64
MAX_HEADER_BYTES = 10_000   # numpy's own limit for a trusted header
CHUNK_BYTES = 1 << 20
DTYPE_KINDS = "biufU"
MAGIC = b"\x93NUMPY"
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
               NotImplementedError, struct.error, ValueError, OverflowError)


class Member:
    """One checked array header of an archive: `dtype`, `shape` and where its data starts."""

    def __init__(self, info, dtype, shape, fortran_order, data_offset):
        self.info, self.dtype, self.shape = info, dtype, shape
        self.fortran_order, self.data_offset = fortran_order, data_offset

    @property
    def ndim(self):
        return len(self.shape)


class Archive:
    """An open .npz archive whose member list and declared sizes have been checked.

    Parameters
    ----------
    path : str
        The file; opening it may raise OSError (e.g. FileNotFoundError) as ``open`` does.
    max_members : int
        More members than this make the file invalid.

    Raises
    ------
    ValueError
        Naming `path`, when the file is not a zip archive of .npy members within the bounds.
    """

    def __init__(self, path, max_members):
        self.path = path
        self._file = open(path, "rb")
        try:
            self._open(max_members)
        except BaseException:
            self._file.close()
            raise

    def _open(self, max_members):
        size = os.fstat(self._file.fileno()).st_size
        if self._file.read(len(MAGIC)) == MAGIC:
            self._fail("it holds a single array (.npy), not an .npz archive")
        self._file.seek(0)
        with self._errors("not a zip archive"):
            self._zip = zipfile.ZipFile(self._file)
        infos = self._zip.infolist()
        if len(infos) > max_members:
            self._fail(f"it holds {len(infos)} members, more than the {max_members} of any "
                       f"model file")
        self.infos = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or len(name) == 4:
                self._fail(f"member {name!r} is not an .npy array")
            if name[:-4] in self.infos:
                self._fail(f"member {name!r} appears twice")
            if info.flag_bits & 0x1:
                self._fail(f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self._fail(f"member {name!r} uses an unsupported compression "
                           f"(method {info.compress_type})")
            if info.compress_size > size or (info.compress_type == zipfile.ZIP_STORED
                                             and info.compress_size != info.file_size):
                self._fail(f"member {name!r} declares {info.compress_size:,} bytes on disk, "
                           f"inconsistent with the file's {size:,} bytes")
            self.infos[name[:-4]] = info
        declared = sum(info.file_size for info in infos)
        if declared > MAX_EXPANSION * size:
            self._fail(f"its members declare {declared:,} bytes in all, more than "
                       f"{MAX_EXPANSION} times the file's size ({size:,} bytes)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the archive and its file."""
        zip_file = getattr(self, "_zip", None)
        if zip_file is not None:
            zip_file.close()
        self._file.close()

    @property
    def names(self):
        """The array names (member names without ".npy"), in archive order."""
        return list(self.infos)

    def header(self, name):
        """Read and check the .npy header of member `name` (no array data is read).

        Returns
        -------
        Member
            Its dtype (a bool, integer, float or unicode dtype) and shape, whose data size
            equals the member's declared size after the header.
        """
        info = self.infos[name]
        with self._errors(f"member {name!r} cannot be read"):
            with self._zip.open(info) as stream:
                prefix = _read_exactly(stream, len(MAGIC) + 2)
                if prefix is None or prefix[:len(MAGIC)] != MAGIC:
                    self._fail(f"member {name!r} is not an .npy array")
                major = prefix[len(MAGIC)]
                if major not in (1, 2, 3):
                    self._fail(f"member {name!r} has .npy format version {major}")
                length_size = 2 if major == 1 else 4
                length = _read_exactly(stream, length_size)
                if length is None:
                    self._fail(f"member {name!r} ends inside its header")
                length = int.from_bytes(length, "little")
                data_offset = len(MAGIC) + 2 + length_size + length
                if length > MAX_HEADER_BYTES or data_offset > info.file_size:
                    self._fail(f"member {name!r} declares a header of {length:,} bytes")
                text = _read_exactly(stream, length)
        if text is None:
            self._fail(f"member {name!r} ends inside its header")
        dtype, shape, fortran_order = self._parse_header(name, text, major)
        n_bytes = math.prod(shape) * dtype.itemsize
        if n_bytes != info.file_size - data_offset:
            self._fail(f"member {name!r} declares shape {shape} of {dtype} ({n_bytes:,} bytes) "
                       f"but holds {info.file_size - data_offset:,} bytes of data")
        return Member(info, dtype, shape, fortran_order, data_offset)

    def read(self, member):
        """The array of a checked `member`, read in pieces of at most 1 MiB.

        Returns
        -------
        ndarray
            In the member's dtype and byte order; writable.
        """
        name = member.info.filename[:-4]
        n_bytes = member.info.file_size - member.data_offset
        buffer = np.empty(n_bytes, dtype=np.uint8)
        view = memoryview(buffer)
        with self._errors(f"member {name!r} cannot be read"):
            with self._zip.open(member.info) as stream:
                if _read_exactly(stream, member.data_offset) is None:
                    self._fail(f"member {name!r} is shorter than its header says")
                done = 0
                while done < n_bytes:
                    block = stream.read(min(CHUNK_BYTES, n_bytes - done))
                    if not block:
                        self._fail(f"member {name!r} is shorter than its header says")
                    view[done:done + len(block)] = block
                    done += len(block)
                if stream.read(1):  # also makes zipfile check the CRC at the end
                    self._fail(f"member {name!r} is longer than its header says")
        order = "F" if member.fortran_order else "C"
        return buffer.view(member.dtype).reshape(member.shape, order=order)

    def _parse_header(self, name, text, major):
        try:
            header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin-1"))
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError,
                UnicodeDecodeError):
            self._fail(f"member {name!r} has an unreadable .npy header")
        if not (isinstance(header, dict)
                and set(header) == {"descr", "fortran_order", "shape"}
                and isinstance(header["descr"], str)
                and isinstance(header["fortran_order"], bool)
                and isinstance(header["shape"], tuple)
                and all(type(n) is int and n >= 0 for n in header["shape"])):
            self._fail(f"member {name!r} has an invalid .npy header {_short(header)}")
        try:
            dtype = np.dtype(header["descr"])
        except (TypeError, ValueError, SyntaxError):
            dtype = None
        if (dtype is None or dtype.kind not in DTYPE_KINDS or dtype.hasobject
                or dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0
                or dtype.metadata):
            self._fail(f"member {name!r} has the unsupported dtype {header['descr']!r}")
        return dtype, header["shape"], header["fortran_order"]

    def _fail(self, problem):
        raise _Refused(f"{self.path}: not a readable mfsgd model file ({problem})")

    @contextlib.contextmanager
    def _errors(self, what):
        """Turn errors of the zip and zlib layers inside the block into a ValueError naming
        the file and `what` was being done."""
        try:
            yield
        except _Refused:
            raise
        except _ZIP_ERRORS as error:
            raise ValueError(f"{self.path}: not a readable mfsgd model file ({what}: "
                             f"{type(error).__name__}: {error})") from error


class _Refused(ValueError):
    """A file refused by a check of this module (passed through as it is)."""


def _read_exactly(stream, n):
    """`n` bytes from `stream`, or None when it ends first."""
    data = stream.read(n)
    return data if len(data) == n else None


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
