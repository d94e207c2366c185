"""Malicious and fuzzed model files: ``load`` gives back exactly what the file holds, or a
ValueError naming the file; never another exception, a hang, or memory out of proportion.

The memory bound: ``load`` may allocate at most ``MEMORY_PER_FILE_BYTE`` (512) times the file's
size, plus 4 MiB, at peak.  The arrays of a file may declare at most 64 times its size (only
deflated members get near that; ``save`` writes stored ones), and JSON text becomes Python
objects of up to about 8 times its unicode bytes.

The crafted files of the first tests are small on disk whatever they declare.  The ``fuzz``
tests mutate files saved from small fitted models: flipped bytes and truncation; members
removed, added, duplicated, renamed or recompressed; .npy headers rewritten with odd or huge
shapes and dtypes; arrays and JSON fields edited, with the digest recomputed after the edits so
that the checks of the contents are reached.
"""
import functools
import io
import json
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import mfsgd
from mfsgd import MatrixFactorization, persistence

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
    (lambda m: m + [(f"x{i}.npy", b"") for i in range(40)], "more than the 27 of any model file"),
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


# ---------------------------------------------------------------------- fuzzing
MEMORY_PER_FILE_BYTE = 512
MEMORY_SLACK = 4 << 20


def checked_load(fuzz_limits, path):
    """load(path) under the time and memory bounds; a ValueError must name the file."""
    size = path.stat().st_size
    outcome = fuzz_limits(load_or_error, path, seconds=SECONDS,
                          max_bytes=MEMORY_PER_FILE_BYTE * size + MEMORY_SLACK)
    if isinstance(outcome, ValueError):
        assert str(path) in str(outcome), str(outcome)
        event(refusal_kind(str(outcome)[len(str(path)) + 2:]))
    else:
        event("loaded")
    return outcome


def refusal_kind(message):
    """A coarse name for a refusal, for the statistics of a fuzz run."""
    if message.startswith("inconsistent"):
        return "contents: " + message.split(": ")[1]
    kinds = {"digest": "digest", "declares shape": "header: shape and size",
             "dtype": "dtype or dimensions", ".npy header": "header: text", "appears twice": "members",
             "members": "members", "missing array": "members", "unexpected array": "members",
             "format_version": "format version", "written by": "format version",
             "cannot be read": "zip data"}
    return next((kind for text, kind in kinds.items() if text in message), message[:60])


def file_contents(path):
    """Every array of a file, read the trusting way (numpy's own reader)."""
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def assert_holds(model, contents):
    """The model, saved again, holds what `contents` (a file's arrays) hold."""
    resaved = persistence._model_arrays(model)
    del resaved["library_version"]
    assert set(resaved) == set(contents) - {persistence.DIGEST_KEY, "library_version"}
    for name, array in resaved.items():
        stored = contents[name]
        if name == "params_json":
            file_params = json.loads(str(stored))
            params = json.loads(str(array))
            defaults = persistence._params_for_json(MatrixFactorization().get_params())
            assert params == {**defaults, **file_params}
        elif name.endswith("_json"):
            assert json.dumps(json.loads(str(array)), sort_keys=True) == \
                json.dumps(json.loads(str(stored)), sort_keys=True)
        elif name.startswith("item_titles"):
            assert array.tolist() == stored.tolist()
        else:
            assert array.dtype == stored.dtype.newbyteorder("="), name
            np.testing.assert_array_equal(array, stored, err_msg=name)


@pytest.mark.fuzz
@given(base=st.sampled_from(sorted(saved_models())),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      max_size=8),
       keep=st.none() | st.floats(0, 1, exclude_max=True))
def test_fuzz_damaged_bytes(tmp_path_factory, fuzz_limits, base, flips, keep):
    """Flipped bytes and truncation: the saved model, or a ValueError naming the file."""
    data = bytearray(saved_models()[base])
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    if keep is not None:
        data = data[:int(keep * len(data))]
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    path.write_bytes(bytes(data))
    outcome = checked_load(fuzz_limits, path)
    if not isinstance(outcome, ValueError):
        original = tmp_path_factory.mktemp("fuzz") / "original.npz"
        original.write_bytes(saved_models()[base])
        assert_holds(outcome, file_contents(original))


KNOWN = sorted(persistence.SCHEMA) + sorted(persistence.OPTIONAL)
ODD_NAMES = ["extra", "", "user_factors.npy", "../user_factors", "a/user_factors", "USER_BIAS",
             "x" * 300, "sha256 ", "user_factors\0"]
DESCRS = ["<f4", "<f8", ">f4", ">f8", "<f2", "<f16", "<i4", "<i8", "<u8", "|u1", "|b1", "<U3",
          ">U5", "|S3", "|O", "<c16", "|V8", "<M8[s]", "<m8", "<U0", "(2,)<f4", "<f4,<i4"]
SHAPES = [(), (0,), (1,), (3,), (2**62,), (2**40, 2**40), (0, 2**63), (1, 1, 1), (7, 0),
          (2**31,), (2**64,)]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
# Edits of the contents come more often: most member-list edits are refused at once.
EDITS = ["drop", "rename", "duplicate", "add", "header", "compress"] + ["array", "json"] * 10
SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1e300, -1e300, 1e-310, 3.4e38]


def edited_json(data, text):
    """Draw an edit of a JSON text: a key set or removed, deep nesting, or any value."""
    try:
        root = json.loads(text)
    except (ValueError, RecursionError):  # an earlier edit left it invalid or deeply nested
        root = None
    kind = data.draw(st.sampled_from(["set"] * 6 + ["remove", "deep", "replace", "garbage"]))
    if kind == "deep":
        depth = data.draw(st.integers(1, 5000))
        return "[" * depth + "]" * depth
    if kind == "garbage":
        return data.draw(st.text(max_size=20))
    if kind == "replace" or not isinstance(root, (dict, list)) or not root:
        return json.dumps(data.draw(JSON))
    target = root
    if isinstance(root, list):  # the history: edit one of its records
        index = data.draw(st.integers(0, len(root) - 1))
        if not isinstance(root[index], dict) or not root[index]:
            root[index] = data.draw(JSON)
            return json.dumps(root)
        target = root[index]
    key = data.draw(st.sampled_from(sorted(target)))
    if kind == "remove":
        del target[key]
    else:
        old = target[key]
        near = [old + 1, old - 1, -old, 0, 2**64] if type(old) is int else [None, 0, -1]
        target[key] = data.draw(st.sampled_from(near) | JSON)
    return json.dumps(root)


def edited_array(data, array):
    """Draw an edit of an array: an element, the dtype, the shape, or a new array."""
    numbers = array.size and array.dtype.kind in "fiub"
    # Elements are edited most: other edits are mostly refused by the schema at once.
    kind = data.draw(st.sampled_from(["element"] * 6 + ["dtype", "shape", "new"] if numbers else
                                     ["dtype", "shape", "new", "bool"]))
    if kind == "element":
        array = array.copy()
        index = data.draw(st.integers(0, array.size - 1))
        value = data.draw(st.sampled_from(SPECIAL_FLOATS) | st.integers(-3, 300)
                          | st.integers(-2**40, 2**40))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                array.flat[index] = value
            except (OverflowError, ValueError):
                pass
        return array
    if kind == "dtype":
        descr = data.draw(st.sampled_from([d for d in DESCRS if d not in ("|O", "<U0")]))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return array.astype(descr)
            except (TypeError, ValueError, OverflowError):
                return array
    if kind == "shape":
        if array.ndim and len(array):
            return array[:-1] if data.draw(st.booleans()) else np.concatenate([array, array[:1]])
        return array.reshape(1, *array.shape)
    if kind == "bool":
        return np.array(data.draw(st.booleans()))
    return np.arange(data.draw(st.integers(0, 5))).astype(data.draw(st.sampled_from(
        ["<f4", "<f8", "<i8", "<i4", "|b1"])))


def parsed(members):
    """{array name: array} when every member is an .npy array numpy reads without pickles
    and within its size, else None."""
    arrays = {}
    for name, body, *_ in members:
        if not name.endswith(".npy") or name[:-4] in arrays:
            return None
        try:
            stream = io.BytesIO(body)
            version = np.lib.format.read_magic(stream)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                               np.lib.format.read_array_header_2_0)(stream)
            if dtype.hasobject or np.prod(shape, dtype=object) * dtype.itemsize > len(body):
                return None
            stream.seek(0)
            arrays[name[:-4]] = np.lib.format.read_array(stream, allow_pickle=False)
        except (ValueError, TypeError, OverflowError, EOFError, SyntaxError):
            return None
    return arrays


@pytest.mark.fuzz
@given(base=st.sampled_from(sorted(saved_models())), data=st.data(),
       n_edits=st.integers(1, 3), fix_digest=st.sampled_from([True, True, True, False]),
       compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
def test_fuzz_edited_members(tmp_path_factory, fuzz_limits, base, data, n_edits, fix_digest,
                             compression):
    """Members edited, with or without the digest recomputed: load returns a model that holds
    exactly what the file holds, or a ValueError naming the file."""
    members = [list(member) for member in members_of(saved_models()[base])]
    for _ in range(n_edits):
        kind = data.draw(st.sampled_from(EDITS))
        i = data.draw(st.integers(0, len(members) - 1)) if members else None
        if kind == "add" or i is None:
            name = data.draw(st.sampled_from(KNOWN + ODD_NAMES))
            body = npy_bytes(data.draw(st.sampled_from(
                [np.zeros(3), np.array("text"), np.array([{}], dtype=object), np.ones((2, 2))])))
            members.append([name + ".npy", body])
        elif kind == "drop":
            members.pop(i)
        elif kind == "rename":
            members[i][0] = data.draw(st.sampled_from(KNOWN + ODD_NAMES)) + ".npy"
        elif kind == "duplicate":
            members.append(list(members[i]))
        elif kind == "compress":
            members[i][2:] = [zipfile.ZIP_DEFLATED]
        elif kind == "header":
            header, body = split_npy(members[i][1])
            members[i][1] = npy_header(data.draw(st.sampled_from(DESCRS)),
                                       data.draw(st.sampled_from(SHAPES)),
                                       data.draw(st.booleans())) + body
        else:
            readable = parsed([("member.npy", members[i][1])])
            if readable is None:  # no array numpy reads safely: nothing to edit
                continue
            array = readable["member"]
            if kind == "json" and array.dtype.kind == "U" and array.ndim == 0:
                array = np.array(edited_json(data, str(array)))
            else:
                array = edited_array(data, array)
            members[i][1] = npy_bytes(array)
    if fix_digest:
        arrays = parsed(members)
        if arrays is not None and persistence.DIGEST_KEY in arrays:
            digest = np.array(persistence.digest(arrays))
            members = [[name, npy_bytes(digest) if name == "sha256.npy" else body, *rest]
                       for name, body, *rest in members]
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    path.write_bytes(zip_bytes(members, compression))
    outcome = checked_load(fuzz_limits, path)
    if not isinstance(outcome, ValueError):
        assert_holds(outcome, file_contents(path))


@pytest.mark.fuzz
@given(base=st.sampled_from(sorted(saved_models())), data=st.data())
def test_fuzz_loaded_models_work(tmp_path_factory, base, data):
    """A model loaded from a re-compressed or re-ordered file predicts like the original."""
    members = members_of(saved_models()[base])
    order = data.draw(st.permutations(range(len(members))))
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    path.write_bytes(zip_bytes([members[i] for i in order],
                               data.draw(st.sampled_from([zipfile.ZIP_STORED,
                                                          zipfile.ZIP_DEFLATED]))))
    original = tmp_path_factory.mktemp("fuzz") / "original.npz"
    original.write_bytes(saved_models()[base])
    loaded, expected = MatrixFactorization.load(path), MatrixFactorization.load(original)
    users, items = loaded.user_ids_[:5], loaded.item_ids_[:5]
    np.testing.assert_array_equal(loaded.predict(users, items), expected.predict(users, items))
    assert_holds(loaded, file_contents(original))
