"""mfsgd.dask: the distributed pipeline lays every block out as the local layout does, a fit on
a LocalCluster (processes, loopback) is bit-identical to a local fit whatever the workers and
partitions, bad input fails before training, and a worker killed mid-fit changes nothing."""
import faulthandler
import importlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import mfsgd  # noqa: E402
from mfsgd.training.layout import build_layout  # noqa: E402
from mfsgd.dask import DaskMatrixFactorization  # noqa: E402
from mfsgd.dask import _pipeline  # noqa: E402

TEST_SECONDS = 120


@pytest.fixture(autouse=True)
def _bounded():
    """Fail loudly (traceback, exit) instead of hanging when a cluster stops answering."""
    faulthandler.dump_traceback_later(TEST_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


class _cluster:
    """A LocalCluster of `n_workers` processes (1 thread each, loopback) whose workers have
    imported mfsgd.dask, so that the first test on it does not pay for the imports."""

    def __init__(self, n_workers):
        self.cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                                processes=True, host="127.0.0.1",
                                                dashboard_address=":0", silence_logs=50)

    def __enter__(self):
        with distributed.Client(self.cluster) as dask_client:
            dask_client.run(importlib.import_module, "mfsgd.dask._blocks")
        return self.cluster

    def __exit__(self, *exc_info):
        self.cluster.close()


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda n: f"{n}workers")
def client(request):
    with _cluster(request.param) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def frame():
    """600 users (integer ids, not 0..n-1), 150 items (string ids), 8000 ratings."""
    users, items, ratings = mfsgd.make_synthetic(n_users=600, n_items=150, n_ratings=8000,
                                                 random_state=4)
    return pd.DataFrame({"uid": users.astype(np.int64) * 7 + 11,
                         "movie": np.array([f"m{i:03d}" for i in items]),
                         "stars": ratings})


def _local_fit(pdf, **params):
    ratings = mfsgd.Ratings.from_dataframe(pdf, user="uid", item="movie", rating="stars")
    return mfsgd.MatrixFactorization(**params).fit(ratings)


def _assert_same_model(dask_model, local):
    """The Dask model's local copy holds a FitState equal to the local model's, field by
    field (arrays and their dtypes, ids, the seen-items index, the generator, the history)."""
    got_model = dask_model.to_local()
    assert type(got_model) is mfsgd.MatrixFactorization
    got, expected = got_model.fit_state_, local.fit_state_
    assert got is not dask_model.fit_state_
    for name in got.trained_fields() + ["seen_indptr", "seen_indices"]:
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
        assert getattr(got, name).dtype == getattr(expected, name).dtype, name
    assert got.global_mean == expected.global_mean
    assert got.rating_range == expected.rating_range
    for side in ("user_map", "item_map"):
        mine, theirs = getattr(got, side).all_raw(), getattr(expected, side).all_raw()
        assert np.array_equal(mine, theirs) and mine.dtype == theirs.dtype, side
    assert got.rng.bit_generator.state == expected.rng.bit_generator.state
    assert (got.epochs_done, got.best_epoch, got.n_train) == \
        (expected.epochs_done, expected.best_epoch, expected.n_train)
    assert np.array_equal(got.user_counts, expected.user_counts)
    assert np.array_equal(got.item_counts, expected.item_counts)
    assert got.partial_epoch is None
    assert len(got.history) == len(expected.history)
    for mine, theirs in zip(got.history, expected.history):
        assert set(mine) == set(theirs)
        for key in set(mine) - {"seconds"}:
            assert mine[key] == theirs[key], (key, mine, theirs)
            assert type(mine[key]) is type(theirs[key]), (key, mine, theirs)


@pytest.mark.parametrize("n_partitions", [1, 4])
@pytest.mark.parametrize("n_blocks", [1, 3])
def test_blocks_are_the_local_layout_sliced(client, frame, n_partitions, n_blocks):
    ratings = mfsgd.Ratings.from_dataframe(frame, user="uid", item="movie", rating="stars")
    local = build_layout(ratings, n_blocks, np.random.default_rng(8))
    ddf = dd.from_pandas(frame, npartitions=n_partitions)
    indexed = _pipeline.index_ratings(client, _pipeline.rating_frame(ddf, "uid", "movie", "stars"),
                                      "uid", "movie", "stars")
    assert np.array_equal(indexed.user_ids, ratings.user_ids)
    assert indexed.user_ids.dtype == ratings.user_ids.dtype
    assert np.array_equal(indexed.item_ids, ratings.item_ids)
    assert indexed.item_ids.dtype == ratings.item_ids.dtype
    assert np.array_equal(indexed.user_counts, np.diff(ratings.indptr))
    assert np.array_equal(indexed.item_counts, np.bincount(ratings.indices,
                                                           minlength=ratings.n_items))
    assert indexed.sum_is_exact
    assert indexed.global_mean == float(np.mean(ratings.data, dtype=np.float64))
    row_block, col_block, seed = _pipeline.draw_assignment(indexed, n_blocks,
                                                           np.random.default_rng(8))
    blocks = _pipeline.place_blocks(client, indexed, row_block, col_block, n_blocks, seed)
    assert np.array_equal(blocks.block_ptr, local.block_ptr)
    for blk, future in blocks.layouts.items():
        layout = future.result()
        r, c = divmod(blk, n_blocks)
        first, last = local.block_ptr[blk], local.block_ptr[blk + 1]
        start, stop = local.run_ptr[first], local.run_ptr[last]
        assert layout.blk == blk
        assert np.array_equal(blocks.users_of_row[r][layout.run_user], local.run_user[first:last])
        assert np.array_equal(layout.run_ptr + start, local.run_ptr[first:last + 1])
        assert np.array_equal(blocks.items_of_col[c][layout.items], local.items[start:stop])
        assert np.array_equal(layout.ratings, local.ratings[start:stop])
        assert blocks.rating_start[blk] == start
    # Each block lives on the worker that owns its row block.
    where = client.who_has(list(blocks.layouts.values()))
    for blk, future in blocks.layouts.items():
        assert where[future.key] == (blocks.owners[blk // n_blocks],)


def test_dask_sees_the_bytes_of_block_outputs_and_layouts():
    """Dask's fallback size of a dataclass is sys.getsizeof (56 bytes): the outputs and
    layouts that move between workers must report their arrays' bytes."""
    from dask.sizeof import sizeof

    from mfsgd.dask._blocks import BlockLayout, ColumnOutput

    factors = np.zeros((1000, 16), dtype=np.float32)
    state = (factors, np.zeros(1000, dtype=np.float32), np.zeros(0, dtype=np.float32))
    assert sizeof(ColumnOutput(state, 1.0)) >= factors.nbytes + 4000
    layout = BlockLayout(0, 1, np.zeros(10, np.int32), np.zeros(11, np.int64),
                         np.zeros(5000, np.int32), np.zeros(5000, np.float32))
    assert sizeof(layout) >= layout.nbytes == 40128


PARAMETER_SETS = [
    dict(n_factors=5, n_epochs=3, n_blocks=3, random_state=3),
    dict(n_factors=16, n_epochs=3, n_blocks=2, learning_rate_schedule="adagrad",
         dtype=np.float64, random_state=5),
    dict(n_factors=4, n_epochs=2, n_blocks="auto", biased=False, non_negative=True,
         learning_rate_schedule="inverse", random_state=7),
]


@pytest.mark.parametrize("n_partitions", [1, 5])
@pytest.mark.parametrize("params", PARAMETER_SETS, ids=["f32", "adagrad-f64", "nonneg-auto"])
def test_fit_is_bit_identical_to_local_fit(client, frame, params, n_partitions):
    local = _local_fit(frame, **params)
    model = DaskMatrixFactorization(client=client, **params)
    model.fit(dd.from_pandas(frame, npartitions=n_partitions), user="uid", item="movie",
              rating="stars")
    _assert_same_model(model, local)
    assert model.driver_stats_["recoveries"] == 0
    users, items = frame["uid"].to_numpy()[:5], frame["movie"].to_numpy()[:5].astype(str)
    assert np.array_equal(model.predict(users, items), local.predict(users, items))


def test_to_local_recommends_and_saves_like_the_local_model(client, frame, tmp_path):
    params = dict(n_factors=4, n_epochs=2, n_blocks=2, random_state=1)
    local = _local_fit(frame, **params)
    model = DaskMatrixFactorization(client=client, **params)
    model.fit(dd.from_pandas(frame, npartitions=3), user="uid", item="movie", rating="stars")
    fitted = model.to_local()
    user = frame["uid"].iloc[0]
    for got, expected in zip(fitted.recommend(user, n=7), local.recommend(user, n=7)):
        assert np.array_equal(got, expected)
    fitted.save(tmp_path / "model.npz")
    loaded = mfsgd.MatrixFactorization.load(tmp_path / "model.npz")
    assert np.array_equal(loaded.item_factors_, local.item_factors_)
    fitted.user_factors_[0] += 1                  # a copy: the estimator is unchanged
    assert np.array_equal(model.to_local().user_factors_, local.user_factors_)


@pytest.mark.parametrize("checkpoint, per_epoch", [("epoch", 1), ("sub-epoch", 3)])
def test_checkpoints_give_the_same_fit(client, frame, checkpoint, per_epoch):
    params = PARAMETER_SETS[0]
    model = DaskMatrixFactorization(client=client, checkpoint=checkpoint, **params)
    model.fit(dd.from_pandas(frame, npartitions=2), user="uid", item="movie", rating="stars")
    _assert_same_model(model, _local_fit(frame, **params))
    sub_epochs = params["n_epochs"] * params["n_blocks"]
    fitted = model.to_local()
    factor_bytes = sum(getattr(fitted, name).nbytes for name in
                       ("user_factors_", "item_factors_", "user_bias_", "item_bias_"))
    # The whole model once per epoch, or once per sub-epoch (n_blocks = 3 of them).
    assert model.driver_stats_["checkpoint_bytes"] == params["n_epochs"] * per_epoch * factor_bytes
    assert model.driver_stats_["block_tasks"] == sub_epochs * params["n_blocks"]


def test_fit_with_uneven_partitions_and_integer_items(client):
    users, items, ratings = mfsgd.make_synthetic(n_users=200, n_items=90, n_ratings=3000,
                                                 random_state=2)
    pdf = pd.DataFrame({"user": [f"u{u}" for u in users], "item": items, "rating": ratings})
    parts = [pdf.iloc[:10], pdf.iloc[10:10], pdf.iloc[10:2500], pdf.iloc[2500:]]
    ddf = dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])
    params = dict(n_factors=8, n_epochs=2, n_blocks=2, random_state=0)
    local = mfsgd.MatrixFactorization(**params).fit(mfsgd.Ratings.from_dataframe(pdf))
    _assert_same_model(DaskMatrixFactorization(client=client, **params).fit(ddf), local)


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def small_client():
    with _cluster(1) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def _small_frame():
    return pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "a", "c"],
                         "rating": [4.0, 3.0, 5.0, 1.0]})


def test_missing_column(small_client):
    ddf = dd.from_pandas(_small_frame(), npartitions=2)
    with pytest.raises(ValueError, match="item='movie' is not a column of ddf"):
        DaskMatrixFactorization(client=small_client).fit(ddf, item="movie")
    with pytest.raises(ValueError, match="is not a column of df"):
        mfsgd.Ratings.from_dataframe(_small_frame(), item="movie")


def test_nan_rating(small_client):
    pdf = _small_frame()
    pdf.loc[3, "rating"] = np.nan
    model = DaskMatrixFactorization(client=small_client, n_epochs=1)
    with pytest.raises(ValueError, match=r"ddf\['rating'\] \(partition 1\) must be finite, "
                                         r"found .*nan"):
        model.fit(dd.from_pandas(pdf, npartitions=2))
    assert not hasattr(model, "history_")


def test_duplicate_pair(small_client):
    pdf = pd.concat([_small_frame(), _small_frame().iloc[[2]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"more than one rating for \(user 2, item 'a'\)"):
        mfsgd.Ratings.from_dataframe(pdf)
    model = DaskMatrixFactorization(client=small_client, n_epochs=1, n_blocks=2)
    with pytest.raises(ValueError, match=r"more than one rating for \(user 2, item 'a'\)"):
        model.fit(dd.from_pandas(pdf, npartitions=3))
    assert not hasattr(model, "history_")


def test_empty_frame(small_client):
    with pytest.raises(ValueError, match=r"df\['rating'\] \(ratings\) is empty: no ratings"):
        mfsgd.Ratings.from_dataframe(_small_frame().iloc[:0])
    ddf = dd.from_pandas(_small_frame().iloc[:0], npartitions=1)
    with pytest.raises(ValueError, match=r"ddf\['rating'\] \(ratings\) is empty: no ratings"):
        DaskMatrixFactorization(client=small_client).fit(ddf)


def test_not_a_dask_frame(small_client):
    with pytest.raises(TypeError, match="ddf must be a dask.dataframe.DataFrame, got DataFrame"):
        DaskMatrixFactorization(client=small_client).fit(_small_frame())


def test_bad_parameter_before_any_work(small_client):
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        DaskMatrixFactorization(client=small_client, learning_rate=0).fit(
            dd.from_pandas(_small_frame(), npartitions=1))


def test_closed_client():
    with _cluster(1) as cluster:
        dask_client = distributed.Client(cluster)
        dask_client.close()
        with pytest.raises(ValueError, match="client is not running"):
            DaskMatrixFactorization(client=dask_client).fit(
                dd.from_pandas(_small_frame(), npartitions=1))


def test_bad_checkpoint_choice(small_client):
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        DaskMatrixFactorization(client=small_client, checkpoint="never").fit(
            dd.from_pandas(_small_frame(), npartitions=1))


def test_divergence_raises_like_local_fit(small_client, frame):
    params = dict(n_factors=4, n_epochs=3, n_blocks=2, learning_rate=1e4, random_state=0)
    with pytest.raises(mfsgd.DivergenceError) as local_error:
        _local_fit(frame, **params)
    model = DaskMatrixFactorization(client=small_client, **params)
    with pytest.raises(mfsgd.DivergenceError) as dask_error:
        model.fit(dd.from_pandas(frame, npartitions=2), user="uid", item="movie",
                  rating="stars")
    assert str(dask_error.value) == str(local_error.value)
    with pytest.raises(mfsgd.NotFittedError):
        model.to_local()


def _split_frame(frame):
    """(training, validation) pandas frames: every 7th rating held out."""
    held = np.arange(len(frame)) % 7 == 3
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def _local_fit_with_validation(train, valid, **params):
    def ratings(pdf):
        return mfsgd.Ratings.from_dataframe(pdf, user="uid", item="movie", rating="stars")
    return mfsgd.MatrixFactorization(**params).fit(ratings(train), validation=ratings(valid))


@pytest.mark.parametrize("early_stopping", [False, True], ids=["validation", "early-stopping"])
def test_validation_and_early_stopping_as_local(small_client, frame, early_stopping):
    train, valid = _split_frame(frame)
    # lr and patience chosen so that early stopping triggers within 12 epochs on this data.
    params = dict(n_factors=6, n_epochs=12, n_blocks=2, learning_rate=0.05, patience=2,
                  tol=0.0, early_stopping=early_stopping, random_state=2)
    local = _local_fit_with_validation(train, valid, **params)
    model = DaskMatrixFactorization(client=small_client, **params)
    model.fit(dd.from_pandas(train, npartitions=3), user="uid", item="movie", rating="stars",
              validation=dd.from_pandas(valid, npartitions=2))
    _assert_same_model(model, local)
    for mine, theirs in zip(model.history_, local.history_):
        assert mine["valid_rmse"] == theirs["valid_rmse"]
        assert mine.get("best") == theirs.get("best")
    if early_stopping:
        assert len(local.history_) < params["n_epochs"]
        assert model.best_epoch_ == local.best_epoch_ < len(local.history_)


def test_callback_stop_leaves_the_local_state(small_client, frame):
    """A callback stops training after the epoch it returned True for, with the local
    fit's factors, history and generator."""
    def stop_at_2(record, model):
        return record["epoch"] == 2

    params = dict(n_factors=4, n_epochs=6, n_blocks=3, random_state=11, callbacks=stop_at_2)
    local = _local_fit(frame, **params)
    model = DaskMatrixFactorization(client=small_client, **params)
    model.fit(dd.from_pandas(frame, npartitions=2), user="uid", item="movie", rating="stars")
    assert len(model.history_) == len(local.history_) == 2
    _assert_same_model(model, local)


def test_interrupted_fit_keeps_the_seen_items_of_the_local_fit(small_client, frame):
    """Ctrl-C after epoch 2 leaves the model at epoch 2, as a local fit: with the index of
    each user's rated items too, so that recommend(exclude_seen=True) still leaves them out."""
    def interrupt_at_2(record, model):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    params = dict(n_factors=4, n_epochs=6, n_blocks=3, random_state=11,
                  callbacks=interrupt_at_2)
    local = mfsgd.MatrixFactorization(**params)
    with pytest.raises(KeyboardInterrupt):
        local.fit(mfsgd.Ratings.from_dataframe(frame, user="uid", item="movie", rating="stars"))
    model = DaskMatrixFactorization(client=small_client, **params)
    with pytest.raises(KeyboardInterrupt):
        model.fit(dd.from_pandas(frame, npartitions=2), user="uid", item="movie",
                  rating="stars")
    assert len(model.history_) == len(local.history_) == 2
    _assert_same_model(model, local)
    user = frame["uid"].iloc[0]
    rated = set(frame.loc[frame["uid"] == user, "movie"])
    items, _ = model.recommend(user, n=150)
    assert rated and not rated & set(items)
    assert list(items) == list(local.recommend(user, n=150)[0])


def test_callbacks_receive_the_estimator_and_each_record(small_client, frame):
    seen = []
    params = dict(n_factors=4, n_epochs=3, n_blocks=2, random_state=0)
    model = DaskMatrixFactorization(client=small_client, callbacks=[
        lambda record, m: seen.append((record["epoch"], m is model, len(m.history_)))],
        **params)
    model.fit(dd.from_pandas(frame, npartitions=2), user="uid", item="movie", rating="stars")
    assert seen == [(1, True, 1), (2, True, 2), (3, True, 3)]


def test_verbose_prints_the_local_table(small_client, frame, capsys):
    train, valid = _split_frame(frame)
    params = dict(n_factors=4, n_epochs=3, n_blocks=2, random_state=0, verbose=True)
    _local_fit_with_validation(train, valid, **params)
    local_lines = capsys.readouterr().out.splitlines()
    DaskMatrixFactorization(client=small_client, **params).fit(
        dd.from_pandas(train, npartitions=2), user="uid", item="movie", rating="stars",
        validation=dd.from_pandas(valid, npartitions=1))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(local_lines) == 4
    assert lines[0] == local_lines[0]
    for mine, theirs in zip(lines[1:], local_lines[1:]):       # all but the seconds
        assert mine.split()[:4] == theirs.split()[:4]


def test_early_stopping_needs_validation(small_client):
    model = DaskMatrixFactorization(client=small_client, early_stopping=True)
    with pytest.raises(ValueError, match="early_stopping needs validation="):
        model.fit(dd.from_pandas(_small_frame(), npartitions=1))
    assert not hasattr(model, "history_")


def test_bad_validation_frame(small_client):
    ddf = dd.from_pandas(_small_frame(), npartitions=1)
    model = DaskMatrixFactorization(client=small_client, n_epochs=1)
    with pytest.raises(ValueError, match="item='movie' is not a column of validation"):
        model.fit(ddf.rename(columns={"item": "movie"}), item="movie",
                  validation=ddf)
    bad = _small_frame()
    bad.loc[1, "rating"] = np.inf
    with pytest.raises(ValueError, match=r"must be finite, found inf at position 1"):
        model.fit(ddf, validation=dd.from_pandas(bad, npartitions=1))
    with pytest.raises(TypeError, match="validation must be a dask.dataframe.DataFrame"):
        model.fit(ddf, validation=_small_frame())
    assert not hasattr(model, "history_")


def test_unfitted_model_raises():
    with pytest.raises(mfsgd.NotFittedError):
        DaskMatrixFactorization().to_local()


def test_is_a_matrix_factorization_that_checkpoints_every_sub_epoch_by_default():
    model = DaskMatrixFactorization()
    assert isinstance(model, mfsgd.MatrixFactorization)
    assert model.checkpoint == "sub-epoch"
    assert model.get_params()["client"] is None
    with pytest.raises(NotImplementedError, match=r"to_local\(\)\.partial_fit"):
        model.partial_fit(_small_frame())


def test_import_error_names_the_extra(tmp_path):
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'dask' or name.startswith('dask.') or name == 'distributed':\n"
            "            raise ImportError('no ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import mfsgd\n"
            "assert 'dask' not in sys.modules\n"
            "try:\n"
            "    import mfsgd.dask\n"
            "except ImportError as error:\n"
            "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'pip install "mfsgd[dask]"' in result.stdout


# ------------------------------------------------------------------ a worker dies
def _worker_pids(dask_client):
    return dask_client.run(os.getpid)


def _kill_owner_of_row_block_0(model):
    driver = model._driver
    dask_client = driver.client
    victim = driver.owners[0]
    os.kill(_worker_pids(dask_client)[victim], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not driver._lost.is_set():          # wait until the scheduler has noticed
        assert time.monotonic() < deadline, "the scheduler never reported the lost worker"
        time.sleep(0.02)


@pytest.fixture
def fault_client():
    with _cluster(2) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.mark.slow
@pytest.mark.parametrize("when, checkpoint", [("after-epoch", "sub-epoch"),
                                              ("mid-epoch", "sub-epoch"),
                                              ("mid-epoch", "epoch")])
def test_killed_worker_recovers_from_the_last_checkpoint(fault_client, frame, when, checkpoint):
    params = dict(n_factors=6, n_epochs=5, n_blocks=3, random_state=9)
    local = _local_fit(frame, **params)
    killed = []

    def kill_after_epoch_2(record, model):
        if record["epoch"] != 2:
            return
        if when == "after-epoch":
            _kill_owner_of_row_block_0(model)
        else:
            def after(epoch, sub_epoch):
                if (epoch, sub_epoch) == (2, 0) and not killed:
                    killed.append(True)
                    _kill_owner_of_row_block_0(model)
            model._driver.after_sub_epoch = after

    model = DaskMatrixFactorization(client=fault_client, callbacks=kill_after_epoch_2,
                                    checkpoint=checkpoint, **params)
    with distributed.get_task_stream(client=fault_client) as stream:
        model.fit(dd.from_pandas(frame, npartitions=3), user="uid", item="movie",
                  rating="stars")
    _assert_same_model(model, local)
    stats = model.driver_stats_
    assert stats["recoveries"] == 1
    (epoch, sub_epoch), = stats["resumed_at"]
    assert epoch == 2                       # the third epoch: nothing before it ran again
    if when == "mid-epoch" and checkpoint == "sub-epoch":
        assert sub_epoch >= 1               # sub-epochs of the third epoch kept, not redone
    else:
        assert sub_epoch == 0
    # Dask itself re-ran no chain of block tasks: at most the two epochs in flight (the one
    # finishing and the one submitted ahead) ran again.
    runs = [t for t in stream.data if str(t["key"]).startswith("run_block")]
    assert len(runs) <= (params["n_epochs"] + 2) * 3 * 3
