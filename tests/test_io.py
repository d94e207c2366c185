"""mfsgd.read_ratings: separators, headers, ids, compression, encodings, errors with line numbers."""
import gzip
import io
import random
import re
import sys
import zipfile

import numpy as np
import pytest

import mfsgd
from mfsgd import Ratings, read_ratings
from mfsgd.data import io as mio
from mfsgd.data.ratings import _stable_sort

ROWS = [(1, 10, 4.0), (1, 20, 3.5), (2, 10, 5.0), (3, 30, 1.0), (2, 30, 2.5)]


def write(tmp_path, text, name="r.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def lines(rows, sep):
    return "".join(sep.join(str(v) for v in row) + "\n" for row in rows)


def expected(rows=ROWS, **kwargs):
    users, items, ratings = zip(*[row[:3] for row in rows])
    return Ratings.from_arrays(list(users), list(items), list(ratings), **kwargs)


def assert_same(a, b):
    for name in ("indptr", "indices", "data", "user_ids", "item_ids"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype.kind == getattr(b, name).dtype.kind, name
    if a.timestamps is None or b.timestamps is None:
        assert a.timestamps is None and b.timestamps is None
    else:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)


def test_exported():
    assert "read_ratings" in mfsgd.__all__ and mfsgd.read_ratings is read_ratings


@pytest.mark.parametrize("sep", ["\t", ",", "::", ";", "|", " ", "  \t "])
def test_separator_inferred(tmp_path, sep):
    assert_same(read_ratings(write(tmp_path, lines(ROWS, sep))), expected())


@pytest.mark.parametrize("sep", ["\t", ",", "::", r"\s+"])
def test_separator_given(tmp_path, sep):
    text = lines(ROWS, " " if sep == r"\s+" else sep)
    assert_same(read_ratings(write(tmp_path, text), sep=sep), expected())


def test_whitespace_runs_and_leading_space(tmp_path):
    text = "  1 10   4\n1\t20 3.5 \n\n2   10\t5\n3 30 1\n2 30 2.5"
    assert_same(read_ratings(write(tmp_path, text)), expected())


def test_multi_char_separator_keeps_single_colons_in_ids(tmp_path):
    text = "a:b::x::4\nc::x:y::2\n"
    ratings = read_ratings(write(tmp_path, text))
    assert ratings.user_ids.tolist() == ["a:b", "c"]
    assert ratings.item_ids.tolist() == ["x", "x:y"]


def test_uninferable_separator(tmp_path):
    with pytest.raises(ValueError, match=r"cannot infer the field separator of .*r\.txt.*sep="):
        read_ratings(write(tmp_path, "abc\ndef\n"))
    with pytest.raises(ValueError, match=r"line 1: expected 3 fields separated by '\\\\s\+'"):
        read_ratings(write(tmp_path, "a b\nc d\n"), columns=("user", "item", "rating"),
                     header=False)
    with pytest.raises(ValueError, match=r"cannot infer the columns of .*r\.txt: its first line "
                                         r"has 2 fields separated by '\\\\s\+'.*columns=.*sep="):
        read_ratings(write(tmp_path, "1 2\n3 4\n"))


def test_header_inferred(tmp_path):
    path = write(tmp_path, "userId,movieId,rating\n" + lines(ROWS, ","))
    assert_same(read_ratings(path), expected())
    assert_same(read_ratings(path, header=True), expected())
    with pytest.raises(ValueError, match=r"r\.txt, line 1: rating 'rating' is not a number"):
        read_ratings(path, header=False)


def test_header_true_drops_a_numeric_first_line(tmp_path):
    path = write(tmp_path, "9,9,9\n" + lines(ROWS, ","))
    assert_same(read_ratings(path, header=True), expected())
    assert read_ratings(path).n_users == 4


def test_header_inferred_from_timestamp_column(tmp_path):
    text = "u i r t\n1 10 4 100\n2 10 3 200\n"
    ratings = read_ratings(write(tmp_path, text), columns=("user", "item", "rating", "timestamp"))
    assert ratings.timestamps.tolist() == [100, 200]


def test_header_only_and_empty_files(tmp_path):
    with pytest.raises(ValueError, match=r"r\.txt is empty"):
        read_ratings(write(tmp_path, ""))
    with pytest.raises(ValueError, match=r"r\.txt is empty"):
        read_ratings(write(tmp_path, "\n\n  \n"))
    with pytest.raises(ValueError, match=r"r\.txt holds a header line but no ratings"):
        read_ratings(write(tmp_path, "user,item,rating\n"))


def test_string_ids(tmp_path):
    ratings = read_ratings(write(tmp_path, "alice,m1,4\nbob,m2,3\nalice,m2,5\n"))
    assert ratings.user_ids.dtype.kind == "U" and ratings.user_ids.tolist() == ["alice", "bob"]
    assert ratings.item_ids.tolist() == ["m1", "m2"]


def test_ids_integer_only_when_every_id_is(tmp_path):
    ratings = read_ratings(write(tmp_path, "1,10,4\n2,x7,3\n12.0,10,5\n"))
    assert ratings.user_ids.tolist() == ["1", "12.0", "2"]
    assert ratings.item_ids.tolist() == ["10", "x7"]
    ratings = read_ratings(write(tmp_path, "-1,+10,4\n 2 , 10 ,3\n"))
    assert ratings.user_ids.tolist() == [-1, 2] and ratings.item_ids.tolist() == [10]


def test_string_ids_appearing_in_a_later_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(mio, "BLOCK_BYTES", 64)
    rows = [(u, u % 7, 3) for u in range(100)] + [("u100", 1, 4)]
    ratings = read_ratings(write(tmp_path, lines(rows, ",")))
    assert ratings.user_ids.dtype.kind == "U" and len(ratings) == 101
    assert "u100" in ratings.user_ids and "5" in ratings.user_ids
    assert ratings.item_ids.dtype.kind == "i"


def test_long_integer_ids(tmp_path):
    ids = [7, 123456789, 1234567890123456, 12345678901234567, 999999999999999999]
    text = "".join(f"{u},1,3\n" for u in ids)
    assert read_ratings(write(tmp_path, text)).user_ids.tolist() == sorted(ids)


def test_timestamps_and_ignored_columns(tmp_path):
    text = "1\tx\t10\t4\t978300760\n2\ty\t10\t5\t978300761\n1\tz\t20\t3\t5\n"
    ratings = read_ratings(write(tmp_path, text), columns=("user", None, "item", "rating", "timestamp"))
    assert_same(ratings, Ratings.from_arrays([1, 2, 1], [10, 10, 20], [4, 5, 3],
                                             [978300760, 978300761, 5]))
    ratings = read_ratings(write(tmp_path, text), columns=("user", "_", "item", "rating", "_"))
    assert ratings.timestamps is None and len(ratings) == 3


def test_column_order(tmp_path):
    text = "4.5,10,1\n3,20,2\n"
    ratings = read_ratings(write(tmp_path, text), columns=("rating", "item", "user"))
    assert_same(ratings, Ratings.from_arrays([1, 2], [10, 20], [4.5, 3]))


def test_gzip_and_zip(tmp_path):
    text = lines(ROWS, "\t").encode()
    gz = tmp_path / "r.tsv.gz"
    gz.write_bytes(gzip.compress(text))
    assert_same(read_ratings(gz), expected())
    one = tmp_path / "one.zip"
    with zipfile.ZipFile(one, "w") as archive:
        archive.writestr("data/ratings.tsv", text)
    assert_same(read_ratings(one), expected())
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("d/README", "not ratings")
        archive.writestr("d/ratings.csv", lines(ROWS, ","))
    assert_same(read_ratings(two, member="d/ratings.csv"), expected())
    with pytest.raises(ValueError, match=r"two\.zip holds 2 files \(d/README, d/ratings\.csv\).*member="):
        read_ratings(two)
    with pytest.raises(ValueError, match=r"member='nope' is not in .*two\.zip"):
        read_ratings(two, member="nope")
    with pytest.raises(ValueError, match=r"member='x' given but .*r\.tsv\.gz is not a zip"):
        read_ratings(gz, member="x")


def test_errors_in_zip_name_the_member(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("d/r.csv", "1,2,3\n1,3,x\n")
    with pytest.raises(ValueError, match=r"a\.zip:d/r\.csv, line 2: rating 'x' is not a number"):
        read_ratings(path)


def test_latin1_and_other_encodings(tmp_path):
    text = "Zoë,Café,4\nJosé,Café,5\nZoë,Naïve,3\n"
    path = write(tmp_path, text, encoding="latin-1")
    ratings = read_ratings(path, encoding="latin-1")
    assert ratings.user_ids.tolist() == ["José", "Zoë"]
    assert ratings.item_ids.tolist() == ["Café", "Naïve"]
    # The message shows the bad id as it is in the file, so that it can be found there.
    with pytest.raises(ValueError, match=r"r\.txt: the user id b'Jos\\xe9' is not valid utf-8 "
                                         r"\(.* at byte 3\); pass the file's encoding="):
        read_ratings(path)
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "cp1252"):
        path = write(tmp_path, text, name=f"{encoding}.txt", encoding=encoding)
        ratings = read_ratings(path, encoding=encoding)
        assert ratings.item_ids.tolist() == ["Café", "Naïve"], encoding
    with pytest.raises(ValueError, match="encoding='klingon' is not a known text encoding"):
        read_ratings(path, encoding="klingon")


def test_bom_and_crlf(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfuser,item,rating\r\n" + lines(ROWS, ",").replace("\n", "\r\n").encode())
    assert_same(read_ratings(path), expected())


def test_malformed_rating_names_file_and_line(tmp_path):
    path = write(tmp_path, "user\titem\trating\n1\t2\t3\n\n1\t3\tfour\n")
    with pytest.raises(ValueError, match=r"r\.txt, line 4: rating 'four' is not a number"):
        read_ratings(path)


def test_wrong_field_count(tmp_path):
    path = write(tmp_path, "1,2,3\n\n1,2\n1,3,4\n")
    with pytest.raises(ValueError, match=r"r\.txt, line 3: expected 3 fields separated by ',' "
                                         r".*found 2"):
        read_ratings(path)
    path = write(tmp_path, "1 2 3\n4 5 6 7\n")
    with pytest.raises(ValueError, match=r"line 2: expected 3 fields .*found 4"):
        read_ratings(path, sep=r"\s+")
    with pytest.raises(ValueError, match=r"line 1: expected 5 fields"):
        read_ratings(write(tmp_path, "1,2,3\n"), columns=("user", "item", "rating", None, None))


def test_line_numbers_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(mio, "BLOCK_BYTES", 50)
    text = "u,i,r\n" + "".join(f"{k},{k % 5},3\n" + ("\n" if k % 4 == 0 else "") for k in range(60))
    assert len(read_ratings(write(tmp_path, text))) == 60
    bad = text + "7,8,x\n"
    n_line = bad.count("\n")
    with pytest.raises(ValueError, match=rf"r\.txt, line {n_line}: rating 'x'"):
        read_ratings(write(tmp_path, bad))
    bad = text + "7,8\n"
    with pytest.raises(ValueError, match=rf"r\.txt, line {n_line}: expected 3 fields"):
        read_ratings(write(tmp_path, bad))


def test_chunk_size_does_not_change_the_result(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    rows = [(int(u), int(i), float(r), int(t)) for u, i, r, t in zip(
        rng.integers(1, 300, 2000), rng.integers(1, 50, 2000), rng.integers(1, 11, 2000) / 2,
        rng.integers(0, 2**31, 2000))]
    path = write(tmp_path, lines(rows, "::"))
    columns = ("user", "item", "rating", "timestamp")
    whole = read_ratings(path, columns=columns, duplicates="last")
    monkeypatch.setattr(mio, "BLOCK_BYTES", 97)
    assert_same(read_ratings(path, columns=columns, duplicates="last"), whole)
    users, items, ratings, stamps = map(list, zip(*rows))
    assert_same(whole, Ratings.from_arrays(users, items, ratings, stamps, duplicates="last"))


def test_empty_id_and_non_finite_rating(tmp_path):
    with pytest.raises(ValueError, match=r"r\.txt, line 2: empty item id"):
        read_ratings(write(tmp_path, "1,2,3\n1,,3\n"))
    with pytest.raises(ValueError, match=r"r\.txt, line 2: rating nan is not finite"):
        read_ratings(write(tmp_path, "1,2,3\n1,3,nan\n"))


def test_timestamp_must_be_an_integer(tmp_path):
    with pytest.raises(ValueError, match=r"r\.txt, line 2: timestamp '1\.5' is not an integer"):
        read_ratings(write(tmp_path, "1,2,3,10\n1,3,4,1.5\n"),
                     columns=("user", "item", "rating", "timestamp"))


def test_rating_scale(tmp_path):
    path = write(tmp_path, "1,2,3\n1,3,5\n2,2,0.5\n2,3,5.5\n")
    with pytest.raises(ValueError, match=r"r\.txt, line 4: rating 5\.5 is outside "
                                         r"rating_scale=\(0\.5, 5\)"):
        read_ratings(path, rating_scale=(0.5, 5))
    assert len(read_ratings(path, rating_scale=(0.5, 5.5))) == 4
    with pytest.raises(ValueError, match="rating_scale must be finite with lowest <= highest"):
        read_ratings(path, rating_scale=(5, 1))
    with pytest.raises(TypeError, match="rating_scale must be a"):
        read_ratings(path, rating_scale=5)


def test_number_formats_match_python(tmp_path):
    """Fast-path and fallback parsing agree with Python's float() on many spellings."""
    rng = random.Random(0)
    spellings = ["4", "4.", ".5", "3.25", "03.50", "-2.5", "+1", " 3 ", "1e0", "2.5E-1",
                 "12345678", "1234567.5", "0.1234567", "123456789.25", "0", "0.0"]
    spellings += [f"{rng.randint(0, 10**rng.randint(0, 7))}.{rng.randint(0, 999)}"
                  for _ in range(300)]
    text = "".join(f"{k},1,{s}\n" for k, s in enumerate(spellings))
    ratings = read_ratings(write(tmp_path, text))
    np.testing.assert_array_equal(ratings.data, np.array([float(s) for s in spellings], np.float32))


def test_duplicates(tmp_path):
    path = write(tmp_path, "1,2,3\n1,2,5\n")
    with pytest.raises(ValueError, match=r"r\.txt: more than one rating for \(user 1, item 2\)"):
        read_ratings(path)
    assert read_ratings(path, duplicates="last").data.tolist() == [5]
    assert read_ratings(path, duplicates="mean").data.tolist() == [4]


def test_argument_checks(tmp_path):
    path = write(tmp_path, lines(ROWS, ","))
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        read_ratings(3)
    with pytest.raises(FileNotFoundError):
        read_ratings(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"columns must name 'user', 'item' and 'rating'; \['rating'\]"):
        read_ratings(path, columns=("user", "item", None))
    with pytest.raises(ValueError, match=r"columns: 'stars' is not one of"):
        read_ratings(path, columns=("user", "item", "stars"))
    with pytest.raises(TypeError, match=r"columns entries must be str or None, got 3"):
        read_ratings(path, columns=("user", "item", 3))
    with pytest.raises(ValueError, match=r"columns names 'user' more than once"):
        read_ratings(path, columns=("user", "user", "item", "rating"))
    with pytest.raises(TypeError, match="columns must be a sequence"):
        read_ratings(path, columns="user,item,rating")
    with pytest.raises(ValueError, match="header must be 'infer', True or False, got 'yes'"):
        read_ratings(path, header="yes")
    with pytest.raises(ValueError, match="sep must be a non-empty string"):
        read_ratings(path, sep="")
    with pytest.raises(TypeError, match="sep must be a str or None, got int"):
        read_ratings(path, sep=9)
    with pytest.raises(ValueError, match="duplicates must be one of"):
        read_ratings(path, duplicates="first")


def test_no_pandas_needed_and_same_result_as_pandas(tmp_path, monkeypatch):
    """read_ratings works without pandas, and equals pandas.read_csv + from_dataframe."""
    rng = np.random.default_rng(1)
    n = 5000
    text = lines(zip(rng.integers(1, 500, n), rng.integers(1, 200, n),
                     np.round(rng.uniform(0.5, 5, n), 2), rng.integers(0, 2**33, n)), ",")
    path = write(tmp_path, "user,item,rating,timestamp\n" + text)
    columns = ("user", "item", "rating", "timestamp")
    pd = pytest.importorskip("pandas")
    reference = Ratings.from_dataframe(pd.read_csv(path), timestamp="timestamp",
                                       duplicates="last")
    monkeypatch.setattr(mio, "BLOCK_BYTES", 4096)  # several chunks: the pandas path applies
    assert_same(read_ratings(path, columns=columns, duplicates="last"), reference)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    for name in [m for m in sys.modules if m.startswith("pandas.")]:
        monkeypatch.delitem(sys.modules, name)
    assert mio._pandas() is None
    assert_same(read_ratings(path, columns=columns, duplicates="last"), reference)


def _many(rows, sep=",", header="", newline="\n"):
    return header + "".join(sep.join(map(str, row)) + newline for row in rows)


_BASE = [(u, u % 13 + 1, (u % 9 + 1) / 2) for u in range(1, 400)]
_STAMPED = [(u, i, r, 978300000 + 7 * u) for u, i, r in _BASE]
PANDAS_CASES = {
    "tab": (_many(_BASE, "\t"), {}),
    "csv header timestamps": (_many(_STAMPED, header="u,i,r,t\n"),
                              {"columns": ("user", "item", "rating", "timestamp")}),
    "blank and whitespace lines, CRLF": (_many(_BASE[:200]) + "\n  \n\t\n" + _many(_BASE[200:], newline="\r\n"), {}),
    "lone CR": (_many(_BASE[:200]) + _many(_BASE[200:], newline="\r"), {}),
    "signs and spaces": (_many([(f"+{u}", f" {i}", f"{r} ") for u, i, r in _BASE]), {}),
    "ignored column": (_many([(u, "x", i, r) for u, i, r in _BASE], ";"),
                       {"columns": ("user", None, "item", "rating")}),
    "integer ratings, negative timestamps": (
        _many([(u, i, int(r), -u) for u, i, r in _BASE], "|"),
        {"columns": ("user", "item", "rating", "timestamp")}),
    "string ids in a later chunk": (_many(_BASE + [("u9", 1, 3)]), {}),
    "exponents": (_many([(u, i, f"{r}e0") for u, i, r in _BASE]), {}),
    # cases pandas would read differently: the numpy parser decides
    "trailing separator": (_many([(u, i, r, "") for u, i, r in _BASE]), {}),
    "short line in an ignored column": (_many([(u, i, r, 0) for u, i, r in _BASE]) + "1,2,3\n",
                                        {"columns": ("user", "item", "rating", None)}),
    "missing rating": (_many(_BASE) + "1,2,\n", {}),
    "nan rating": (_many(_BASE) + "1,2,nan\n", {}),
    "too many fields": (_many(_BASE) + "1,2,3,4\n", {}),
    "outside scale": (_many(_BASE) + "1,2,9\n", {"rating_scale": (0.5, 5)}),
    "empty id": (_many(_BASE) + ",2,3\n", {}),
    "huge id": (_many(_BASE) + "99999999999999999999,2,3\n", {}),
    "text timestamp": (_many(_STAMPED) + "1,2,3,soon\n",
                       {"columns": ("user", "item", "rating", "timestamp")}),
}


def test_pandas_only_for_large_files_unless_imported(tmp_path, monkeypatch):
    path = write(tmp_path, _many(_BASE))
    monkeypatch.setattr(mio, "BLOCK_BYTES", 512)
    handed = []  # bytes handed over to the (spied) pandas path
    monkeypatch.setattr(mio._Reader, "_read_with_pandas",
                        lambda self, prefix, stream: handed.append(len(prefix) + len(stream.read())))
    monkeypatch.delitem(sys.modules, "pandas", raising=False)  # not imported yet...
    monkeypatch.setattr(mio, "_pandas", lambda: object())      # ...but importable
    monkeypatch.setattr(mio, "PANDAS_MIN_BYTES", 2048)
    numpy_part = read_ratings(path)
    assert len(handed) == 1 and 0 < handed[0] <= len(_many(_BASE)) - 2048
    assert 0 < len(numpy_part) < len(_BASE)
    monkeypatch.setattr(mio, "PANDAS_MIN_BYTES", 10**9)
    assert len(read_ratings(path)) == len(_BASE) and len(handed) == 1  # numpy only
    monkeypatch.setitem(sys.modules, "pandas", object())  # imported: used from chunk two
    read_ratings(path)
    assert len(handed) == 2 and handed[1] > len(_many(_BASE)) - 1024


@pytest.mark.parametrize("case", list(PANDAS_CASES))
def test_pandas_and_numpy_paths_agree(tmp_path, monkeypatch, case):
    pytest.importorskip("pandas")
    text, kwargs = PANDAS_CASES[case]
    path = write(tmp_path, text)
    monkeypatch.setattr(mio, "BLOCK_BYTES", 512)
    monkeypatch.setattr(mio, "PANDAS_ROWS", 50)
    taken = []
    original = mio._Reader._read_with_pandas

    def spy(self, prefix, stream):
        taken.append(case)
        return original(self, prefix, stream)

    monkeypatch.setattr(mio._Reader, "_read_with_pandas", spy)
    passes = []
    read = mio._Reader.read
    monkeypatch.setattr(mio._Reader, "read", lambda self: passes.append(1) or read(self))
    outcomes = []
    for pandas in (mio._pandas, lambda: None):
        monkeypatch.setattr(mio, "_pandas", pandas)
        try:
            outcomes.append(read_ratings(path, duplicates="last", **kwargs))
        except ValueError as error:
            outcomes.append(str(error))
    with_pandas, without = outcomes
    if isinstance(without, str):
        assert with_pandas == without
        assert re.search(r"r\.txt(, line \d+)?: ", without), without
    else:
        assert taken == [case]  # the first read handed the file to pandas after one chunk
        if case not in ("string ids in a later chunk", "huge id"):  # ids become strings
            assert len(passes) == 2  # pandas read it in one pass (numpy in the second call)
        assert_same(with_pandas, without)
        assert len(without) >= len(_BASE) - 1


def test_stable_sort_matches_numpy():
    rng = np.random.default_rng(2)
    for high in (10, 2**40, 2**62):
        key = rng.integers(0, high, 10_000)
        order, keys = _stable_sort(key.copy(), block=999)
        np.testing.assert_array_equal(order, np.argsort(key, kind="stable"))
        np.testing.assert_array_equal(keys, np.sort(key))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint64])
def test_from_arrays_with_small_integer_ids(dtype):
    low = np.iinfo(dtype).min
    users = np.array([low, low + 120, low, low + 5], dtype=dtype)
    items = np.array([3, 1, 2, 3], dtype=dtype)
    ratings = Ratings.from_arrays(users, items, [1, 2, 3, 4])
    assert ratings.user_ids.dtype == dtype
    assert ratings.user_ids.tolist() == [low, low + 5, low + 120]
    assert ratings.to_arrays()[1].tolist() == [2, 3, 3, 1]
    np.testing.assert_array_equal(ratings.indptr, [0, 2, 3, 4])


def test_scanner_fast_paths_agree_with_python():
    """The SWAR integer and decimal parsers accept exactly the plain spellings they claim and
    return Python's value for them; everything else is left to the fallback."""
    from mfsgd.data import _textscan

    rng = random.Random(1)
    fields = []
    for _ in range(20000):
        kind = rng.random()
        if kind < 0.35:
            fields.append(str(rng.randint(0, 10 ** rng.randint(0, 17))))
        elif kind < 0.7:
            fields.append(f"{rng.randint(0, 99999)}.{rng.randint(0, 999):0{rng.randint(1, 3)}d}")
        else:
            fields.append(rng.choice(["-3", "+4", " 5", "5 ", "1e3", "nan", "abc", "", "3..5",
                                      ".", ".5", "5.", "12345678", "123456789", "1234.678",
                                      "1234.6789", "0", "9" * 16, "9" * 17, "/", ":"]))
    body = "".join(f"{a},{b}\n" for a, b in zip(fields[::2], fields[1::2])).encode()
    buf = _textscan.padded(body)
    starts, ends, rows, n_lines = _textscan.split_fields(buf, ord(","), 2)
    assert rows is None and n_lines == len(fields) // 2
    starts, ends = starts.ravel(), ends.ravel()
    integers, int_ok = _textscan.parse_integers(buf, starts, ends)
    decimals, dec_ok = _textscan.parse_decimals(buf, starts, ends)
    for field, value, ok, dvalue, dok in zip(fields, integers, int_ok, decimals, dec_ok):
        plain_int = field.isdigit() and len(field) <= 16
        assert ok == plain_int, field
        if ok:
            assert value == int(field), field
        whole, _, fraction = field.partition(".")
        plain_dec = (len(field) <= 8 and field not in ("", ".") and field.count(".") <= 1
                     and (whole + fraction).isdigit())
        assert dok == plain_dec, field
        if dok:
            assert dvalue == float(field), field
    strings = _textscan.gather_strings(buf, starts, ends)
    assert [s.decode() for s in strings.tolist()] == [f.strip() for f in fields]


@pytest.mark.slow
def test_bench_io_script_runs(tmp_path):
    """benchmarks/bench_io.py runs end to end on tiny files (no speed asserts)."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_io.py"
    if not script.is_file():
        pytest.skip("not running from a source checkout")
    done = subprocess.run([sys.executable, str(script), "--lines", "3000", "--memory-lines",
                           "4000", "--repeats", "1", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| 3 columns, tab |" in done.stdout and "Ratings.from_arrays" in done.stdout
    assert list(tmp_path.iterdir()) == []  # temporary files removed


# --- columns from the header's names or the field count ----------------------------------

MOVIELENS_CSV = "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n1,20,3.5,964981247\n" \
                "5,10,0.5,847434962\n"


def test_movielens_ratings_csv_reads_with_defaults(tmp_path):
    ratings = read_ratings(write(tmp_path, MOVIELENS_CSV, name="ratings.csv"))
    assert_same(ratings, Ratings.from_arrays([1, 1, 5], [10, 20, 10], [4, 3.5, 0.5],
                                             [964982703, 964981247, 847434962]))


def test_four_fields_without_header_hold_a_timestamp(tmp_path):
    ratings = read_ratings(write(tmp_path, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"))
    assert ratings.timestamps.tolist() == [891717742, 881250949]
    three = read_ratings(write(tmp_path, "196\t242\t3\n186\t302\t3\n"))
    assert three.timestamps is None and len(three) == 2


@pytest.mark.parametrize("header, expect_stamps", [
    ("movieId;rating;userId;tag", False),             # any order; unnamed fields are skipped
    ("ITEM_ID;Score;USER;ts", True),                   # aliases, case-insensitive
    (" movieid ; rating ; uid ; time ", True),         # spaces around names
])
def test_columns_from_header_names(tmp_path, header, expect_stamps):
    text = header + "\n10;4;1;100\n20;3.5;1;200\n10;0.5;5;300\n"
    ratings = read_ratings(write(tmp_path, text))
    assert_same(Ratings(ratings.indptr, ratings.indices, ratings.data, ratings.user_ids,
                        ratings.item_ids), Ratings.from_arrays([1, 1, 5], [10, 20, 10], [4, 3.5, 0.5]))
    assert (ratings.timestamps is not None) == expect_stamps


def test_header_naming_some_columns_must_agree_with_the_field_count(tmp_path):
    ratings = read_ratings(write(tmp_path, "user,movie,rating\n1,2,3\n"))  # positional, agrees
    assert ratings.user_ids.tolist() == [1] and ratings.item_ids.tolist() == [2]
    with pytest.raises(ValueError, match=r"cannot infer the columns of .*r\.txt: its header "
                                         r"\['movie', 'user', 'rating'\] names user in field 2.*columns="):
        read_ratings(write(tmp_path, "movie,user,rating\n1,2,3\n"))


def test_column_inference_errors_say_what_was_seen_and_what_fixes_it(tmp_path):
    with pytest.raises(ValueError, match=r"r\.txt: its first line has 5 fields separated by ','.*"
                                         r"columns=\('user', 'item', 'rating', 'timestamp', None\)"
                                         r".*sep="):
        read_ratings(write(tmp_path, "1,2,3,4,5\n"))
    with pytest.raises(ValueError, match=r"its header \['a', 'b', 'c', 'd', 'e'\] separated by "
                                         r"',' and does not name the user, item and rating"):
        read_ratings(write(tmp_path, "a,b,c,d,e\n1,2,3,4,5\n"))
    with pytest.raises(ValueError, match=r"names the user column more than once \(fields 1, 2\)"):
        read_ratings(write(tmp_path, "user,userId,item,rating\n1,2,3,4\n"))
    with pytest.raises(ValueError, match=r"line 2: timestamp 'good' is not an integer \(columns "
                                         r"inferred as \('user', 'item', 'rating', 'timestamp'\) "
                                         r"from the number of fields; pass columns=\)"):
        read_ratings(write(tmp_path, "1,2,3,100\n1,3,3,good\n"))


@pytest.mark.parametrize("skip", [None, "-", "", "_"])
def test_columns_may_name_header_fields(tmp_path, skip):
    path = write(tmp_path, MOVIELENS_CSV)
    ratings = read_ratings(path, columns=("userId", "movieId", "rating", skip))
    assert ratings.timestamps is None and ratings.user_ids.tolist() == [1, 5]
    mixed = read_ratings(path, columns=("user", "movieId", "score", "time"))  # roles and names
    assert mixed.timestamps is not None and len(mixed) == 3
    same = read_ratings(path, columns=("user_id", "movieId", "rating", "timestamp"))  # same role
    assert_same(same, mixed)


def test_header_names_in_columns_must_match_the_header(tmp_path):
    path = write(tmp_path, MOVIELENS_CSV)
    with pytest.raises(ValueError, match=r"r\.txt: columns names field 1 'movieId', but the header "
                                         r"has 'userId' there"):
        read_ratings(path, columns=("movieId", "userId", "rating", None))
    # Without a header, names are only other spellings of the roles.
    text = MOVIELENS_CSV.split("\n", 1)[1]
    ratings = read_ratings(write(tmp_path, text), columns=("movieId", "userId", "rating", None))
    assert ratings.user_ids.tolist() == [10, 20]


def test_role_tuples_read_as_before(tmp_path):
    text = "u i r t\n1 10 4 100\n2 10 3 200\n"
    ratings = read_ratings(write(tmp_path, text), columns=("user", "item", "rating", "timestamp"))
    assert ratings.timestamps.tolist() == [100, 200]
    ratings = read_ratings(write(tmp_path, text), columns=("rating", None, "item", "user"),
                           header=True)
    assert ratings.user_ids.tolist() == [100, 200] and ratings.data.tolist() == [1, 2]


# --- no data lost before the first complete line -------------------------------------------

def _numbered_lines(n, sep="\t"):
    return "".join(f"{k}{sep}{k % 97}{sep}{k % 5 + 1}\n" for k in range(n))


def test_more_blank_lines_than_the_sample_come_first(tmp_path, monkeypatch):
    # 70,000 blank lines (> the 64 KiB sample), then ratings: nothing may be skipped.
    path = write(tmp_path, "\n" * 70_000 + _numbered_lines(2000))
    assert len(read_ratings(path)) == 2000
    monkeypatch.setattr(mio, "BLOCK_BYTES", 100_000)  # the ratings start inside block one
    assert len(read_ratings(path)) == 2000
    with pytest.raises(ValueError, match=r"r\.txt, line 70004: rating 'x'"):
        read_ratings(write(tmp_path, "\n" * 70_000 + _numbered_lines(3) + "1\t2\tx\n"))


@pytest.mark.parametrize("block", [4 << 20, 50_000])
def test_first_line_longer_than_the_sample(tmp_path, monkeypatch, block):
    monkeypatch.setattr(mio, "BLOCK_BYTES", block)
    first = "-1\t-1\t3." + "0" * 70_000 + "\n"  # a 70 KB first line
    ratings = read_ratings(write(tmp_path, first + _numbered_lines(5000)))
    assert len(ratings) == 5001 and ratings.user_ids[0] == -1
    skipped = "-1\t-1\t3\t" + "x" * 70_000 + "\n" + _numbered_lines(5000).replace("\n", "\tx\n")
    ratings = read_ratings(write(tmp_path, skipped), columns=("user", "item", "rating", None))
    assert len(ratings) == 5001


def test_line_length_is_bounded(tmp_path, monkeypatch):
    limit = mio.MAX_LINE_BYTES
    exact = "1,2," + "0" * (limit - 6) + "3\r\n"  # the line break does not count
    assert len(exact) - 2 == limit - 1
    assert read_ratings(write(tmp_path, exact + "2,2,4\n")).data.tolist() == [3, 4]
    long_line = "1,2," + "0" * (limit - 4) + "3\n"
    with pytest.raises(ValueError, match=r"r\.txt, line 3: longer than 1,048,576 bytes"):
        read_ratings(write(tmp_path, "1,1,1\n\n" + long_line + "2,2,2\n"))
    # 3 MB without a line break: a clear error after reading just past the limit.
    with pytest.raises(ValueError, match=r"r\.txt, line 1: longer than 1,048,576 bytes"):
        read_ratings(write(tmp_path, "1" * (3 << 20)))


@pytest.mark.parametrize("block", [7, 16, 33, 1000])
def test_line_chunks_against_python(block):
    """LineChunks yields exactly the lines Python finds (CR, CRLF split across reads, a last
    line without a break), whatever the block size, and bounds lines exactly."""
    from mfsgd.data._textsource import LineChunks

    rng = random.Random(block)
    for _ in range(200):
        parts = [rng.choice([b"a", b"bb", b"\r", b"\n", b"\r\n", b"cccc", b" ", b"\xef\xbb\xbf"])
                 for _ in range(rng.randint(0, 30))]
        data = b"".join(parts)
        limit = rng.randint(1, 12)
        text = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        expected = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = expected.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        too_long = next((k + 1 for k, line in enumerate(lines) if len(line) > limit), None)
        chunks = LineChunks(io.BytesIO(data), "f", block, limit, bom=b"\xef\xbb\xbf")
        if too_long is None:
            got = b"".join(chunks)
            assert got == b"".join(line + b"\n" for line in lines), data
            assert chunks.lines == len(lines) and chunks.bytes_read == len(data)
        else:
            with pytest.raises(ValueError, match=rf"f, line {too_long}: longer than {limit:,} bytes"):
                list(chunks)


# --- values never change quietly -----------------------------------------------------------

def test_rating_beyond_float32_names_its_line(tmp_path):
    with pytest.raises(ValueError, match=r"r\.txt, line 2: rating 1e\+39 is beyond the float32 "
                                         r"range"):
        read_ratings(write(tmp_path, "1,2,3\n1,3,1e39\n"))
    with pytest.raises(ValueError, match=r"line 3: rating -3\.5e\+38 is beyond the float32"):
        read_ratings(write(tmp_path, "1,2,3\n1,3,3e38\n1,4,-3.5e38\n"))


@pytest.mark.parametrize("first", ["1,2,", "1,2,x", "1,2, ", "a,b,", "alice,time,"])
def test_a_first_line_with_a_bad_rating_is_an_error_not_a_header(tmp_path, first):
    path = write(tmp_path, first + "\n1,3,4\n")
    with pytest.raises(ValueError, match=r"r\.txt, line 1: rating '.*' is not a number \(if line "
                                         r"1 is a header, pass header=True\)"):
        read_ratings(path)
    assert len(read_ratings(path, header=True, columns=("user", "item", "rating"))) == 1


def test_header_rule(tmp_path):
    """header="infer": a header names user, item and rating, or has no empty or numeric field."""
    for header in ["u,i,r", "alice,m1,x", ",userId,movieId,rating", "user,item,nan_count"]:
        text = header + "\n" + ("0," if header.startswith(",") else "") + "1,2,3\n"
        assert len(read_ratings(write(tmp_path, text))) == 1, header
    assert len(read_ratings(write(tmp_path, "u,i,3\n1,2,3\n"))) == 2  # a number: data
    for first in ["u,,r", "u,i,inf", "nan,i,r", "user,time,"]:
        with pytest.raises(ValueError, match=r"line 1: "):
            read_ratings(write(tmp_path, first + "\n1,2,3\n"))


def test_nul_bytes_are_errors(tmp_path):
    for text in [b"a\0,2,3\na,3,4\n", b"1,2,3\n12\0,2,3\n12,3,4\n", b"1,2,3\n\0\n"]:
        line = text[:text.index(b"\0")].count(b"\n") + 1
        with pytest.raises(ValueError, match=rf"r\.txt, line {line}: holds a NUL byte"):
            read_ratings(write(tmp_path, text))


def test_underscores_are_not_digits(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: rating '4_5' is not a number"):
        read_ratings(write(tmp_path, "1,2,3\n1,3,4_5\n"))
    with pytest.raises(ValueError, match=r"line 2: timestamp '1_0' is not an integer"):
        read_ratings(write(tmp_path, "1,2,3,10\n1,3,4,1_0\n"))
    ratings = read_ratings(write(tmp_path, "1_000,2,4\n1000,3,4\n"))
    assert ratings.user_ids.tolist() == ["1000", "1_000"]


@pytest.mark.parametrize("stamp", ["1e300", "9223372036854775808", "-9223372036854775809",
                                   "1e3", "inf"])
def test_timestamps_outside_int64_name_their_line(tmp_path, stamp):
    columns = ("user", "item", "rating", "timestamp")
    with pytest.raises(ValueError, match=rf"r\.txt, line 2: timestamp '{re.escape(stamp)}' is "
                                         rf"(not an integer|beyond the 64-bit integer range)"):
        read_ratings(write(tmp_path, f"1,2,3,10\n1,3,4,{stamp}\n"), columns=columns)
    edge = read_ratings(write(tmp_path, "1,2,3,9223372036854775807\n1,3,4,-9223372036854775808\n"),
                        columns=columns)
    assert edge.timestamps.tolist() == [2**63 - 1, -2**63]


def test_fields_longer_than_the_fast_paths(tmp_path):
    zeros = "0" * 100
    text = f"{zeros}7 , {zeros}3 ,{zeros}3.5,  {zeros}42\n8,3,+{zeros}1e0,-{zeros}1\n"
    ratings = read_ratings(write(tmp_path, text))
    assert ratings.user_ids.tolist() == [7, 8] and ratings.item_ids.tolist() == [3]
    assert ratings.data.tolist() == [3.5, 1] and sorted(ratings.timestamps.tolist()) == [-1, 42]
    with pytest.raises(ValueError, match=r"line 2: rating '\+0000.*\(1\d\d characters\) is not a number"):
        read_ratings(write(tmp_path, text.replace("1e0", "1_0")))


# --- damaged archives ---------------------------------------------------------------------

def _zip_bytes(data, compression=zipfile.ZIP_DEFLATED, name="r.csv"):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def _patch_zip(blob, compress_type=None, flag=None, file_size=None):
    """Rewrite the local and central headers of a one-member zip archive."""
    blob = bytearray(blob)
    local, central = 0, blob.rindex(b"PK\x01\x02")
    for header, flag_at, type_at, size_at in ((local, 6, 8, 22), (central, 8, 10, 24)):
        if flag is not None:
            blob[header + flag_at:header + flag_at + 2] = flag.to_bytes(2, "little")
        if compress_type is not None:
            blob[header + type_at:header + type_at + 2] = compress_type.to_bytes(2, "little")
        if file_size is not None:
            blob[header + size_at:header + size_at + 4] = file_size.to_bytes(4, "little")
    return bytes(blob)


def damaged_archives():
    data = _numbered_lines(3000, ",").encode()
    gz = gzip.compress(data)
    deflated = _zip_bytes(data)
    bad_deflate = bytearray(deflated)
    bad_deflate[60:80] = b"\xff" * 20
    return {
        "truncated gzip": gz[:len(gz) // 2],
        "gzip with a wrong length": gz[:-4] + (len(data) + 1).to_bytes(4, "little"),
        "gzip with a wrong CRC": gz[:-8] + b"\0\0\0\0" + gz[-4:],
        "corrupt gzip data": gz[:20] + b"\xff" * 40 + gz[60:],
        "gzip then garbage": gz + b"garbage!",
        "truncated zip": deflated[:len(deflated) // 2],
        "zip with corrupt data": bytes(bad_deflate),
        "zip with a wrong CRC": _zip_bytes(data, zipfile.ZIP_STORED).replace(
            zipfile.ZipFile(io.BytesIO(deflated)).getinfo("r.csv").CRC.to_bytes(4, "little"),
            b"\0\0\0\0"),
        "zip with an unsupported compression": _patch_zip(deflated, compress_type=99),
        "encrypted zip": _patch_zip(deflated, flag=1),
        "zip declaring 4 GB": _patch_zip(deflated, file_size=4_000_000_000),
        "stored zip declaring 4 GB": _patch_zip(_zip_bytes(data, zipfile.ZIP_STORED),
                                                file_size=4_000_000_000),
        "gzip declaring 4 GB": gz[:-4] + (4_000_000_000).to_bytes(4, "little"),
    }


@pytest.mark.parametrize("case", list(damaged_archives()))
def test_damaged_archives_raise_value_error_naming_the_file(tmp_path, case, fuzz_limits):
    path = write(tmp_path, damaged_archives()[case], name="damaged.bin")
    with pytest.raises(ValueError, match=r"damaged\.bin"):
        # Declared sizes are never trusted for allocation: a few MB at most.
        fuzz_limits(read_ratings, path, max_bytes=8 << 20, seconds=20)


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_declared_sizes_are_only_hints(tmp_path, compression, fuzz_limits):
    """A member declaring 4 GB whose data is intact is read, allocating in proportion to the
    rows read (the decompressor's own state, up to 8 MiB for LZMA, comes on top)."""
    data = _numbered_lines(20_000, ",").encode()
    path = write(tmp_path, _patch_zip(_zip_bytes(data, compression), file_size=4_000_000_000),
                 name="big.zip")
    ratings = fuzz_limits(read_ratings, path, max_bytes=40 * len(data) + (16 << 20), seconds=20)
    assert len(ratings) == 20_000


# --- memory in proportion to the input -----------------------------------------------------

def test_one_long_string_id_does_not_widen_every_row(tmp_path, fuzz_limits):
    # 1.6 MB with one 100 KB id: the fixed-width id array would need 60 GB; refused at once.
    text = "".join(f"u{k},i{k % 100},3\n" for k in range(120_000)) + "x" * 100_000 + ",i1,4\n"
    path = write(tmp_path, text)
    assert 1.5e6 < len(text) < 1.7e6
    with pytest.raises(ValueError, match=r"r\.txt, line 120001: this user id is 100,000 bytes long"
                                         r".*more than 32 times the file's size"):
        fuzz_limits(read_ratings, path, max_bytes=100 << 20, seconds=60)
    # A long id that keeps the array within bounds is read as it is.
    text = "".join(f"u{k},i{k % 100},3\n" for k in range(1000)) + "y" * 300 + ",i1,4\n"
    ratings = read_ratings(write(tmp_path, text))
    assert "y" * 300 in ratings.user_ids and len(ratings) == 1001


def test_quoted_fields_get_an_error_that_says_so(tmp_path):
    # Book-Crossing's layout: every field in double quotes, ';' between them, a header.
    path = write(tmp_path, '"User-ID";"ISBN";"Book-Rating"\n"276725";"034545104X";"0"\n'
                           '"276726";"0155061224";"5"\n')
    with pytest.raises(ValueError) as info:
        read_ratings(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 2: rating \"0\" is in quotes")
    assert "sed 's/\"//g'" in message and "columns=" not in message and "header=" not in message
    single = write(tmp_path, "1,2,'4'\n")
    with pytest.raises(ValueError, match=r"line 1: rating '4' is in quotes.*sed \"s/'//g\""):
        read_ratings(single)
