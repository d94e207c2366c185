"""mfsgd.datasets: MovieLens layouts from folders and zips, titles, splits, cached downloads."""
import hashlib
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

from mfsgd import Ratings
from mfsgd.data import datasets
from mfsgd.datasets import load_movielens, load_movielens_split

# Tiny stand-ins for each MovieLens layout: {file name: bytes}.
ML100K = {
    "u.data": b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
              b"244\t51\t2\t880606923\n196\t51\t5\t881250950\n",
    "u.item": "242|Kolya (1996)|24-Jan-1997||http://x|0|1\n302|L.A. Confidential (1997)|01-Jan-1997"
              "||http://y|0|1\n377|Heavyweights (1994)|01-Jan-1994||http://z|0|1\n"
              "51|Café au lait (1993)|01-Jan-1993||http://w|0|1\n".encode("latin-1"),
    "u1.base": b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n",
    "u1.test": b"244\t51\t2\t880606923\n196\t51\t5\t881250950\n",
    "ua.base": b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
    "ua.test": b"22\t377\t1\t878887116\n244\t51\t2\t880606923\n196\t51\t5\t881250950\n",
}
ML1M = {
    "ratings.dat": b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                  "661::Café Society (1995)::Drama\n".encode("latin-1"),
    "users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n",
}
ML10M = {
    "ratings.dat": b"1::122::5::838985046\n1::185::4.5::838983525\n7::122::0.5::1049764742\n",
    "movies.dat": "122::Boomerang (1992)::Comedy|Romance\n185::Amélie (2001)::Comedy\n".encode(),
    "tags.dat": b"15::4973::excellent!::1215184630\n",
}
MLCSV = {
    "ratings.csv": b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n"
                   b"5,11,0.5,847434962\n",
    "movies.csv": 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                  '11,"American President, The (1995)",Comedy|Drama\n'
                  '4973,"Amélie (Fabuleux destin d\'Amélie Poulain, Le) (2001)",Comedy\n'.encode(),
}
LAYOUTS = {"ml-100k": ML100K, "ml-1m": ML1M, "ml-10M100K": ML10M, "ml-latest-small": MLCSV}
EXPECTED = {  # (n ratings, user ids, item ids, ratings in CSR order, a title)
    "ml-100k": (5, [22, 186, 196, 244], [51, 242, 302, 377], [1, 3, 5, 3, 2],
                (51, "Café au lait (1993)")),
    "ml-1m": (3, [1, 2], [661, 1193], [3, 5, 4], (661, "Café Society (1995)")),
    "ml-10M100K": (3, [1, 7], [122, 185], [5, 4.5, 0.5], (185, "Amélie (2001)")),
    "ml-latest-small": (3, [1, 5], [1, 11], [4, 3.5, 0.5], (11, "American President, The (1995)")),
}


def make_folder(root, name):
    folder = root / name
    folder.mkdir(parents=True)
    for file, data in LAYOUTS[name].items():
        (folder / file).write_bytes(data)
    return folder


def make_zip(root, name, compression=zipfile.ZIP_DEFLATED):
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.zip"
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for file, data in LAYOUTS[name].items():
            archive.writestr(f"{name}/{file}", data)
    return path


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("form", ["folder", "parent folder", "zip"])
def test_layouts(tmp_path, name, form):
    if form == "zip":
        source = make_zip(tmp_path, name)
    else:
        source = make_folder(tmp_path, name)
        source = source.parent if form == "parent folder" else source
    ratings = load_movielens(source)
    n, users, items, values, (movie, title) = EXPECTED[name]
    assert isinstance(ratings, Ratings) and len(ratings) == n
    assert ratings.user_ids.tolist() == users and ratings.item_ids.tolist() == items
    np.testing.assert_array_equal(ratings.data, np.array(values, np.float32))
    assert ratings.timestamps is not None and ratings.timestamps.min() > 8e8
    assert ratings.item_titles[movie] == title
    assert ratings.item_titles[np.int64(movie)] == title  # numpy ids work as keys


def test_timestamps_follow_their_ratings(tmp_path):
    ratings = load_movielens(make_folder(tmp_path, "ml-100k"))
    users, items, _ = ratings.to_arrays()
    stamps = dict(zip(zip(users.tolist(), items.tolist()), ratings.timestamps.tolist()))
    assert stamps[(196, 51)] == 881250950 and stamps[(22, 377)] == 878887116


def test_item_titles_in_ratings():
    titles = {10: "Ten", 20: "Twenty"}
    ratings = Ratings.from_arrays([1, 1, 2], [10, 20, 20], [3, 4, 5])
    assert ratings.item_titles is None
    titled = Ratings(ratings.indptr, ratings.indices, ratings.data, ratings.user_ids,
                     ratings.item_ids, item_titles=titles)
    titles[10] = "changed"
    assert titled.item_titles[10] == "Ten"  # copied
    with pytest.raises(TypeError):
        titled.item_titles[10] = "x"  # read-only
    assert titled.take([2]).item_titles == {10: "Ten", 20: "Twenty"}
    with pytest.raises(TypeError, match="item_titles must be a mapping of raw item id to title, got list"):
        Ratings(ratings.indptr, ratings.indices, ratings.data, ratings.user_ids,
                ratings.item_ids, item_titles=[("a", 1)])


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_splits(tmp_path, form):
    source = make_zip(tmp_path, "ml-100k") if form == "zip" else make_folder(tmp_path, "ml-100k")
    train, test = load_movielens_split(source, 1)
    assert (len(train), len(test)) == (3, 2) and test.user_ids.tolist() == [196, 244]
    assert train.timestamps is not None and test.item_titles[51] == "Café au lait (1993)"
    train, test = load_movielens_split(source, "a")
    assert (len(train), len(test)) == (2, 3)
    with pytest.raises(ValueError, match=r"fold must be one of \[1, 2, 3, 4, 5, 'a', 'b'\], got 6"):
        load_movielens_split(source, 6)
    with pytest.raises(FileNotFoundError, match=r"has no ml-100k/u2\.base or ml-100k/u2\.test"
                       if form == "zip" else r"has no u2\.base or u2\.test"):
        load_movielens_split(source, 2)  # not in the tiny fixture


def test_split_needs_100k(tmp_path):
    with pytest.raises(ValueError, match="MovieLens 1m: predefined splits .* only in MovieLens 100K"):
        load_movielens_split(make_folder(tmp_path, "ml-1m"), 1)


def test_unknown_folder_and_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no MovieLens ratings file"):
        load_movielens(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="'nope' is neither an existing path nor a MovieLens name"):
        load_movielens("nope", data_home=tmp_path)
    with pytest.raises(TypeError, match="name_or_path must be a MovieLens name or a path, got int"):
        load_movielens(100)


def test_missing_from_cache_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv("MFSGD_MOVIELENS_URL", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        load_movielens("1m", data_home=tmp_path / "cache")
    message = str(info.value)
    assert str(tmp_path / "cache" / "ml-1m.zip") in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert "download=True" in message and "by hand" in message
    assert not (tmp_path / "cache").exists()


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MFSGD_DATA", str(tmp_path / "env"))
    assert datasets.movielens_data_home() == tmp_path / "env"
    assert datasets.movielens_data_home(tmp_path / "x") == tmp_path / "x"
    make_zip(tmp_path / "env", "ml-1m")
    assert len(load_movielens("ml-1m")) == 3
    monkeypatch.delenv("MFSGD_DATA")
    assert datasets.movielens_data_home() == datasets.Path.home() / "mfsgd_data"


class _Server:
    """An HTTP server on 127.0.0.1 serving `files` ({path: bytes}) and counting requests."""

    def __init__(self):
        self.files = {}
        self.stalled = set()             # paths answered with a few bytes, then nothing
        self.release = threading.Event()  # ends the stalled answers
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path in server.stalled:
                    self.send_response(200)
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    self.wfile.write(b"PK\x03\x04")
                    self.wfile.flush()
                    server.release.wait(60)
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    served = _Server()
    monkeypatch.setenv("MFSGD_MOVIELENS_URL", served.url)
    yield served
    served.close()


def archive_bytes(tmp_path, name="ml-100k", compression=zipfile.ZIP_DEFLATED):
    return make_zip(tmp_path / "build", name, compression=compression).read_bytes()


def test_download_then_cache(tmp_path, server):
    data = archive_bytes(tmp_path)
    server.files["/ml-100k.zip"] = data
    server.files["/ml-100k.zip.md5"] = f"MD5 (ml-100k.zip) = {hashlib.md5(data).hexdigest()}\n".encode()
    cache = tmp_path / "cache"
    ratings = load_movielens("100k", data_home=cache, download=True)
    assert len(ratings) == 5 and ratings.item_titles[51] == "Café au lait (1993)"
    assert server.requests == ["/ml-100k.zip", "/ml-100k.zip.md5"]
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k.zip", "ml-100k.zip.sha256"]
    record = (cache / "ml-100k.zip.sha256").read_text()
    assert hashlib.sha256(data).hexdigest() in record and "matched the MD5 published at" in record
    assert len(load_movielens("100k", data_home=cache, download=True)) == 5
    assert len(load_movielens("ml-100k", data_home=cache)) == 5
    train, test = load_movielens_split("100k", 1, data_home=cache, download=True)
    assert (len(train), len(test)) == (3, 2)
    assert len(server.requests) == 2  # the cached archive is never downloaded again


def test_download_without_published_checksum_records_one(tmp_path, server):
    data = archive_bytes(tmp_path, "ml-latest-small")
    server.files["/ml-latest-small.zip"] = data
    cache = tmp_path / "cache"
    assert len(load_movielens("latest-small", data_home=cache, download=True)) == 3
    record = (cache / "ml-latest-small.zip.sha256").read_text()
    assert hashlib.sha256(data).hexdigest() in record and "first download" in record
    # Later loads check the cached archive against the recorded SHA-256.
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    (cache / "ml-latest-small.zip").write_bytes(bytes(damaged))
    with pytest.raises(OSError, match=r"ml-latest-small\.zip has SHA-256 .*expected .*corrupted"):
        load_movielens("latest-small", data_home=cache)


def test_corrupted_download_leaves_nothing(tmp_path, server):
    data = archive_bytes(tmp_path)
    server.files["/ml-100k.zip"] = data[:-10] + b"0123456789"  # damaged in transit
    server.files["/ml-100k.zip.md5"] = hashlib.md5(data).hexdigest().encode()
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match=r"download of .*/ml-100k\.zip has MD5 .* publishes .*"
                                      r"corrupted, nothing was stored"):
        load_movielens("100k", data_home=cache, download=True)
    assert list(cache.iterdir()) == []
    del server.files["/ml-100k.zip.md5"]  # no checksum: the zip's own CRCs still catch it
    stored = archive_bytes(tmp_path, compression=zipfile.ZIP_STORED)
    server.files["/ml-100k.zip"] = stored.replace(b"Kolya", b"Kolyb")
    with pytest.raises(OSError, match=r"download of .*/ml-100k\.zip is not usable .*CRC"):
        load_movielens("100k", data_home=cache, download=True)
    server.files["/ml-100k.zip"] = b"<html>not an archive</html>"
    with pytest.raises(OSError, match=r"not usable \(not a zip archive\)"):
        load_movielens("100k", data_home=cache, download=True)
    assert list(cache.iterdir()) == []


def test_pinned_checksum(tmp_path, server, monkeypatch):
    data = archive_bytes(tmp_path, "ml-1m")
    server.files["/ml-1m.zip"] = data
    cache = tmp_path / "cache"
    monkeypatch.setitem(datasets.MOVIELENS, "1m", ("ml-1m.zip", "0" * 64))
    with pytest.raises(OSError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        load_movielens("1m", data_home=cache, download=True)
    assert list(cache.iterdir()) == []
    monkeypatch.setitem(datasets.MOVIELENS, "1m", ("ml-1m.zip", hashlib.sha256(data).hexdigest()))
    assert len(load_movielens("1m", data_home=cache, download=True)) == 3
    assert "pinned" in (cache / "ml-1m.zip.sha256").read_text()


STALLED_DOWNLOAD = """
import sys
from pathlib import Path
from mfsgd.data import _download
_download.download(sys.argv[1], Path(sys.argv[2]), "by hand")
"""


def test_temporary_file_of_a_killed_download_is_removed_by_the_next_one(tmp_path, server):
    cache = tmp_path / "cache"
    server.stalled.add("/ml-latest.zip")
    server.files["/ml-100k.zip"] = archive_bytes(tmp_path)
    server.files["/ml-1m.zip"] = archive_bytes(tmp_path, "ml-1m")
    writer = subprocess.Popen([sys.executable, "-c", STALLED_DOWNLOAD,
                               server.url + "ml-latest.zip", str(cache / "ml-latest.zip")],
                              cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not (cache.is_dir() and os.listdir(cache)) and time.monotonic() < deadline:
            time.sleep(0.05)
        [temporary] = list(cache.iterdir())
        assert re.fullmatch(r"\.ml-latest\.zip\.mfsgd-[0-9a-f]{12}\.part", temporary.name)
        then = time.time() - 3600
        os.utime(temporary, (then, then))
        assert len(load_movielens("100k", data_home=cache, download=True)) == 5
        assert temporary.exists()  # its writer is alive (it holds the lock): never removed
    finally:
        writer.kill()
        writer.wait()
    assert len(load_movielens("1m", data_home=cache, download=True)) == 3
    assert sorted(p.name for p in cache.iterdir()) == [
        "ml-100k.zip", "ml-100k.zip.sha256", "ml-1m.zip", "ml-1m.zip.sha256"]


def test_http_error_names_the_url(tmp_path, server):
    with pytest.raises(ConnectionError, match=r"could not download .*/ml-25m\.zip: HTTP Error 404"):
        load_movielens("25m", data_home=tmp_path / "cache", download=True)
    assert list((tmp_path / "cache").iterdir()) == []


def test_unreachable_server(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    monkeypatch.setenv("MFSGD_MOVIELENS_URL", url)
    with pytest.raises(ConnectionError) as info:
        load_movielens("10m", data_home=tmp_path / "cache", download=True)
    message = str(info.value)
    assert f"could not download {url}ml-10m.zip" in message
    assert "by hand and pass its path" in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_real_movielens_100k(ml100k_dir):
    ratings = load_movielens(ml100k_dir)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (100_000, 943, 1682)
    assert len(ratings.item_titles) == 1682 and ratings.item_titles[1] == "Toy Story (1995)"
    assert ratings.rating_range == (1.0, 5.0) and len(ratings.timestamps) == 100_000
    train, test = load_movielens_split(ml100k_dir, 1)
    assert (len(train), len(test)) == (80_000, 20_000)
    train, test = load_movielens_split(ml100k_dir, "b")
    assert len(test) == 9430


def _zip_with(tmp_path, name, replace):
    """A zip of a MovieLens layout with some files replaced ({file: bytes})."""
    files = dict(LAYOUTS[name], **replace)
    path = tmp_path / f"{name}-custom.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file, data in files.items():
            archive.writestr(f"{name}/{file}", data)
    return path


def _damage_member(path, member):
    """Overwrite bytes in the compressed data of one member of a zip archive."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    blob = bytearray(path.read_bytes())
    name_length = int.from_bytes(blob[info.header_offset + 26:info.header_offset + 28], "little")
    extra_length = int.from_bytes(blob[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    blob[start + 2:start + 2 + min(12, info.compress_size - 4)] = b"\xff" * min(12, info.compress_size - 4)
    path.write_bytes(bytes(blob))


def test_titles_are_read_in_bounded_pieces(tmp_path, fuzz_limits):
    # 20 MB of u.item whose lines carry a 5 KB field besides a short title: memory follows
    # the titles kept, not the file.
    lines = [f"{k}|Movie {k} (1999)|01-Jan-1999||http://x/{'a' * 5000}|0|1\n" for k in range(4000)]
    path = _zip_with(tmp_path, "ml-100k", {"u.item": "".join(lines).encode("latin-1")})
    ratings = fuzz_limits(load_movielens, path, max_bytes=6 << 20, seconds=60)
    assert len(ratings.item_titles) == 4000 and ratings.item_titles[3999] == "Movie 3999 (1999)"


def test_title_lines_are_bounded(tmp_path):
    path = _zip_with(tmp_path, "ml-100k", {"u.item": b"1|Toy Story|" + b"x" * (2 << 20) + b"\n"})
    with pytest.raises(ValueError, match=r"ml-100k-custom\.zip:ml-100k/u\.item, line 1: longer "
                                         r"than 1,048,576 bytes"):
        load_movielens(path)
    path = _zip_with(tmp_path, "ml-latest-small", {"movies.csv": b'movieId,title\n1,"' + b"y" * 200_000
                                                   + b'"\n'})
    with pytest.raises(ValueError, match=r"movies\.csv, line 2: field larger than field limit"):
        load_movielens(path)


@pytest.mark.parametrize("member", ["u.data", "u.item", "u1.base"])
def test_damaged_movielens_archives_raise_value_error(tmp_path, member):
    big = {"u.data": b"".join(b"%d\t%d\t3\t881250949\n" % (k, k % 50) for k in range(2000)),
           "u1.base": b"".join(b"%d\t%d\t3\t881250949\n" % (k, k % 50) for k in range(2000))}
    path = _zip_with(tmp_path, "ml-100k", big)
    _damage_member(path, f"ml-100k/{member}")
    with pytest.raises(ValueError, match=r"ml-100k-custom\.zip"):
        if member == "u1.base":
            load_movielens_split(path, 1)
        else:
            load_movielens(path)
    with pytest.raises(ValueError, match=r"ml-100k-custom\.zip is not a readable zip archive"):
        datasets._check_archive(path)  # what a download is checked with


def test_title_ids_as_ratings_ids(tmp_path):
    item = "1|One\n²|Squared\n" + "9" * 5000 + "|Long\n007|Seven\n"
    path = _zip_with(tmp_path, "ml-100k", {"u.item": item.encode("latin-1")})
    titles = load_movielens(path).item_titles
    assert titles[1] == "One" and titles["²"] == "Squared" and titles[7] == "Seven"
    assert titles["9" * 5000] == "Long"
