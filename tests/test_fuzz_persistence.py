"""Malicious model files, small on disk whatever they declare: ``load`` refuses them with a
ValueError naming the file before it allocates anything in proportion to their claims."""
import functools
import io
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import mfsgd
from mfsgd import MatrixFactorization

SECONDS = 20
GIB = 1 << 30


# ---------------------------------------------------------------------- building files
@functools.lru_cache(maxsize=None)
def saved_models():
    """Files saved from small fitted models: {name: bytes}.  Int ids with constant steps;
    string ids, adagrad, early stopping, float64 and titles; identity maps from a sparse
    matrix with an MT19937 generator."""
    import tempfile
    from pathlib import Path

    import scipy.sparse

    users, items, values = mfsgd.make_synthetic(n_users=30, n_items=20, n_ratings=300,
                                                random_state=4)
    named = mfsgd.Ratings.from_arrays(np.array([f"user {u}" for u in users]),
                                      np.array([f"item {i}" for i in items]), values)
    sparse = scipy.sparse.csr_matrix((values, (users, items)), shape=(30, 20))
    models = {
        "int ids": MatrixFactorization(n_factors=3, n_epochs=2, random_state=0, n_threads=1)
        .fit(mfsgd.Ratings.from_arrays(users, items, values)),
        "string ids": MatrixFactorization(n_factors=4, n_epochs=5, random_state=1, n_threads=1,
                                          learning_rate_schedule="adagrad", early_stopping=True,
                                          patience=2, dtype=np.float64).fit(named),
        "identity": MatrixFactorization(n_factors=2, n_epochs=1, n_threads=1,
                                        random_state=np.random.Generator(np.random.MT19937(2)))
        .fit(sparse),
    }
    models["string ids"].item_titles_ = {f"item {i}": f"Title {i}" for i in range(0, 20, 3)}
    files = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in models.items():
            path = Path(folder) / "model.npz"
            model.save(path)
            files[name] = path.read_bytes()
    return files


def members_of(data):
    """[(member name, uncompressed bytes)] of a zip archive, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def zip_bytes(members, compression=zipfile.ZIP_STORED):
    """A zip archive of [(name, bytes)] or [(name, bytes, compression)] members."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are written on purpose
        with zipfile.ZipFile(out, "w") as archive:
            for name, data, *method in members:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = method[0] if method else compression
                archive.writestr(info, data)
    return out.getvalue()


def npy_bytes(array):
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=True)
    return out.getvalue()


def npy_header(descr, shape, fortran_order=False):
    """The .npy header bytes for a header dict, as numpy writes it (format 1.0)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": fortran_order, "shape": shape})
    return out.getvalue()


def raw_header(text):
    """A .npy 1.0 header holding `text` (any text, padded as numpy pads)."""
    body = text.encode("latin-1", errors="replace")
    body += b" " * (-(len(body) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def split_npy(data):
    """(header bytes, data bytes) of a .npy member."""
    length = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else \
        struct.unpack("<I", data[8:12])[0]
    start = (10 if data[6] == 1 else 12) + length
    return data[:start], data[start:]


def deflated_zeros(header, n_mib):
    """(deflate stream, CRC-32, size) of `header` followed by `n_mib` MiB of zero bytes, built
    without compressing them all: after a full flush every MiB compresses to the same bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(n_mib):
        crc = zlib.crc32(zeros, crc)
    return head + block * n_mib + compressor.flush(), crc, len(header) + (n_mib << 20)


def hand_made_zip(entries):
    """A zip archive of (name, method, payload, crc, size) entries whose payloads are already
    compressed (zipfile cannot write such entries itself)."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, method, payload, crc, size in entries:
        offset = local.tell()
        encoded = name.encode()
        local.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                                len(payload), size, len(encoded), 0) + encoded + payload)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                                  len(payload), size, len(encoded), 0, 0, 0, 0, 0, offset)
                      + encoded)
    directory = central.getvalue()
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                      len(directory), local.tell(), 0)
    return local.getvalue() + directory + end


def stored_entries(data):
    """The members of a saved model as hand_made_zip entries (stored)."""
    return [(name, zipfile.ZIP_STORED, body, zlib.crc32(body), len(body))
            for name, body in members_of(data)]


def load_or_error(path):
    """The loaded model, or the ValueError load raised (any other exception propagates)."""
    try:
        return MatrixFactorization.load(path)
    except ValueError as error:
        return error


# ---------------------------------------------------------------------- crafted files
def test_huge_shape_in_a_header_is_refused_without_allocating(tmp_path, fuzz_limits):
    members = members_of(saved_models()["int ids"])
    # 2**40 x 8 float32: 32 TiB claimed by a member that holds a few hundred bytes.
    members = [(name, npy_header("<f4", (2**40, 8)) + split_npy(data)[1]
                if name == "user_factors.npy" else data) for name, data in members]
    path = tmp_path / "model.npz"
    path.write_bytes(zip_bytes(members))
    error = fuzz_limits(load_or_error, path, max_bytes=1 << 20, seconds=SECONDS)
    assert isinstance(error, ValueError)
    assert "'user_factors' declares shape (1099511627776, 8)" in str(error)


def test_extra_gigabyte_member_is_refused_before_it_is_decompressed(tmp_path, fuzz_limits):
    payload, crc, size = deflated_zeros(npy_header("|u1", (GIB,)), 1024)
    entries = stored_entries(saved_models()["int ids"])
    entries.append(("extra.npy", zipfile.ZIP_DEFLATED, payload, crc, size))
    path = tmp_path / "model.npz"
    path.write_bytes(hand_made_zip(entries))
    assert path.stat().st_size < 2 << 20
    error = fuzz_limits(load_or_error, path, max_bytes=1 << 20, seconds=SECONDS)
    assert isinstance(error, ValueError)
    assert "more than 64 times the file's size" in str(error)


def test_gigabyte_member_under_a_known_name_is_refused_before_it_is_decompressed(
        tmp_path, fuzz_limits):
    payload, crc, size = deflated_zeros(npy_header("<f4", (GIB // 12, 3)), 1024)
    entries = [entry if entry[0] != "user_factors.npy" else
               ("user_factors.npy", zipfile.ZIP_DEFLATED, payload, crc, size)
               for entry in stored_entries(saved_models()["int ids"])]
    path = tmp_path / "model.npz"
    path.write_bytes(hand_made_zip(entries))
    error = fuzz_limits(load_or_error, path, max_bytes=1 << 20, seconds=SECONDS)
    assert isinstance(error, ValueError)
    assert "more than 64 times the file's size" in str(error)


def test_member_names_are_checked_before_any_member_is_read(tmp_path):
    # The extra member is not even a valid deflate stream: reading it would fail differently.
    entries = stored_entries(saved_models()["int ids"])
    entries.append(("extra.npy", zipfile.ZIP_DEFLATED, b"\xff" * 64, 0, 128))
    path = tmp_path / "model.npz"
    path.write_bytes(hand_made_zip(entries))
    with pytest.raises(ValueError, match=r"model\.npz: unexpected array 'extra'"):
        MatrixFactorization.load(path)


@pytest.mark.parametrize("header, problem", [
    (npy_header("|O", (3,)), "unsupported dtype '|O'"),
    (npy_header([("a", "<f4")], (3,)), "invalid .npy header"),
    (npy_header("<c8", (3,)), "unsupported dtype '<c8'"),
    (npy_header("<M8[s]", (3,)), "unsupported dtype '<M8[s]'"),
    (npy_header("|V4", (3,)), "unsupported dtype '|V4'"),
    (npy_header("<U0", (3,)), "unsupported dtype '<U0'"),
    (raw_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }"), "invalid .npy header"),
    (raw_header("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }"), "invalid .npy header"),
    (raw_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3.0,), }"), "invalid .npy header"),
    (raw_header("{'descr': '<f4', 'shape': (3,), }"), "invalid .npy header"),
    (raw_header("{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 300 + ")" * 300 + "}"),
     "unreadable .npy header"),
    (raw_header("__import__('os').system('echo hi')"), "unreadable .npy header"),
    (raw_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)"), "unreadable .npy header"),
    (b"\x93NUMPY\x01\x00\xff\xff", "declares a header of 65,535 bytes"),
    (b"\x93NUMPY\x07\x00", ".npy format version 7"),
    (b"PK\x03\x04", "is not an .npy array"),
])
def test_odd_headers_are_refused(tmp_path, header, problem):
    members = [(name, header + b"\0" * 12 if name == "item_bias.npy" else data)
               for name, data in members_of(saved_models()["int ids"])]
    path = tmp_path / "model.npz"
    path.write_bytes(zip_bytes(members))
    with pytest.raises(ValueError, match=r"model\.npz: not a readable mfsgd model file") as info:
        MatrixFactorization.load(path)
    assert problem in str(info.value)
    assert "pickle" not in str(info.value)


@pytest.mark.parametrize("change, problem", [
    (lambda m: m + [m[0]], "member 'format_version.npy' appears twice"),
    (lambda m: m + [("extra.npy", npy_bytes(np.zeros(2)))], "unexpected array 'extra'"),
    (lambda m: m + [(f"x{i}.npy", b"") for i in range(40)], "more than the 22 of any model file"),
    (lambda m: [(n if n != "item_bias.npy" else "item_bias", d) for n, d in m],
     "member 'item_bias' is not an .npy array"),
    (lambda m: [(n, d) for n, d in m if n != "format_version.npy"], "no format_version"),
    (lambda m: [(n, d[:-3] if n == "item_bias.npy" else d) for n, d in m],
     "declares shape (20,) of float32 (80 bytes) but holds 77 bytes"),
])
def test_odd_member_lists_are_refused(tmp_path, change, problem):
    path = tmp_path / "model.npz"
    path.write_bytes(zip_bytes(change(members_of(saved_models()["int ids"]))))
    with pytest.raises(ValueError, match=r"model\.npz") as info:
        MatrixFactorization.load(path)
    assert problem in str(info.value)


def test_declared_size_beyond_the_data_is_refused(tmp_path):
    entries = stored_entries(saved_models()["int ids"])
    entries = [(name, method, payload, crc, size + (1 << 20) if name == "user_bias.npy" else size)
               for name, method, payload, crc, size in entries]
    path = tmp_path / "model.npz"
    path.write_bytes(hand_made_zip(entries))
    with pytest.raises(ValueError, match=r"model\.npz: not a readable mfsgd model file"):
        MatrixFactorization.load(path)
