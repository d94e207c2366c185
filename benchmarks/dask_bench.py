"""Distributed against local training: ``python -m benchmarks.dask_bench``.

Fits the same synthetic ratings (``benchmarks.data.make_dataset``, k = 32 by default) with
``MatrixFactorization`` on 2 threads and with ``mfsgd.dask.DaskMatrixFactorization`` on a
2-worker ``LocalCluster`` (worker processes, 1 thread each, loopback), the same ``n_blocks``
and seed, alternating the two for ``--repeats`` rounds, and reports:

- seconds per epoch (wall time between epoch ends, median of the epochs after the first,
  median over rounds) of both;
- the distributed fit's preparation time (reading Parquet to laid-out blocks);
- bytes moved between workers per sub-epoch (the workers' logs of transfers to other
  workers, read between epochs) and bytes gathered by the client per sub-epoch (the
  checkpoint), with ``checkpoint="sub-epoch"`` and ``"epoch"``;
- the scheduler's overhead per task: no-op tasks submitted in a batch (throughput) and
  one after another (round trip);
- whether the two fits gave bit-identical factors.

The ratings are written once as Parquet files (``--partitions`` of them) and read with
``dask.dataframe.read_parquet``.  Results go to stdout and to ``--out``/dask_bench.json.
Needs ``pip install "mfsgd[dask]"``.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .data import format_count, make_dataset, parse_count


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class _EpochClock:
    """A callback noting the wall time at every epoch's end: an epoch's seconds in
    ``history_`` count only the loop's waits for the backend, not the epoch-end work (nor,
    on Dask, the part of the next epoch that runs during it)."""

    def __init__(self):
        self.times = []

    def __call__(self, record, model):
        self.times.append(time.perf_counter())

    def steady_epoch_seconds(self):
        """Median wall time between epoch ends (the epochs after the first)."""
        gaps = np.diff(self.times)
        return float(statistics.median(gaps)) if len(gaps) else float("nan")


def _write_parquet(users, items, ratings, directory, n_files):
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(ratings), n_files + 1).astype(np.int64)
    for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        pd.DataFrame({"user": users[a:b], "item": items[a:b], "rating": ratings[a:b]}
                     ).to_parquet(directory / f"part-{j:03d}.parquet", index=False)


def _peer_bytes(dask_worker):
    """Bytes this worker has sent to other workers (its transfer log names the peer; data
    the client gathers is logged without one)."""
    return sum(entry["total"] for entry in dask_worker.transfer_outgoing_log
               if entry.get("who"))


def _noop(x):
    return x


def task_overhead(client, n_batch=400, n_serial=100):
    """(seconds per task in a batch of no-op tasks, seconds per no-op task round trip)."""
    start = time.perf_counter()
    futures = [client.submit(_noop, j, pure=False) for j in range(n_batch)]
    client.gather(futures)
    batch = (time.perf_counter() - start) / n_batch
    start = time.perf_counter()
    for j in range(n_serial):
        client.submit(_noop, j, pure=False).result()
    serial = (time.perf_counter() - start) / n_serial
    return batch, serial


def run(n_ratings, n_factors, n_epochs, n_blocks, n_files, repeats, workdir):
    """Run the comparison; returns the result dict."""
    import distributed

    import mfsgd

    info = make_dataset(n_ratings, workdir)
    arrays = np.load(info["npz"])
    users, items, values = arrays["u"], arrays["i"], arrays["r"]
    ratings = mfsgd.Ratings.from_arrays(users, items, values)
    parquet = Path(workdir) / f"parquet-{format_count(n_ratings)}-{n_files}"
    if not parquet.is_dir():
        _write_parquet(users, items, values, parquet, n_files)
    params = dict(n_factors=n_factors, n_epochs=n_epochs, n_blocks=n_blocks, random_state=0)
    result = {"ratings": len(ratings), "users": ratings.n_users, "items": ratings.n_items,
              "n_factors": n_factors, "n_epochs": n_epochs, "n_blocks": n_blocks,
              "parquet_files": n_files, "cpu": _cpu_model(), "cores": os.cpu_count(),
              "load_before": os.getloadavg(), "local": [], "dask_sub-epoch": [],
              "dask_epoch": []}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0",
                                  silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        result["task_overhead_batch_s"], result["task_overhead_serial_s"] = \
            task_overhead(client)
        for _ in range(repeats):
            clock = _EpochClock()
            local = mfsgd.MatrixFactorization(n_threads=2, callbacks=[clock],
                                              **params).fit(ratings)
            result["local"].append({"epoch_s": clock.steady_epoch_seconds()})
            for checkpoint in ("sub-epoch", "epoch"):
                result[f"dask_{checkpoint}"].append(
                    _dask_fit(client, parquet, params, checkpoint, local))
    result["load_after"] = os.getloadavg()
    for side in ("local", "dask_sub-epoch", "dask_epoch"):
        result[f"{side}_epoch_s"] = statistics.median(r["epoch_s"] for r in result[side])
    for side in ("dask_sub-epoch", "dask_epoch"):
        result[f"{side}_ratio"] = result[f"{side}_epoch_s"] / result["local_epoch_s"]
    return result


def _dask_fit(client, parquet, params, checkpoint, local):
    """One distributed fit: its figures, and whether it equals the local fit `local`."""
    import dask.dataframe as dd

    from mfsgd.dask import DaskMatrixFactorization

    transfers = []

    clock = _EpochClock()

    def read_transfers(record, model):
        clock(record, model)
        transfers.append(sum(client.run(_peer_bytes).values()))

    import distributed

    start = time.perf_counter()
    model = DaskMatrixFactorization(client=client, callbacks=read_transfers,
                                    checkpoint=checkpoint, **params)
    with distributed.get_task_stream(client=client) as stream:
        model.fit(dd.read_parquet(str(parquet)))
    kernel = [sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
              for task in stream.data if str(task["key"]).startswith("run_block")]
    n_blocks, n_epochs = params["n_blocks"], params["n_epochs"]
    fitted = model.to_local()
    return {
        "epoch_s": clock.steady_epoch_seconds(),
        # Up to the first epoch's end, less one steady epoch.
        "prepare_s": clock.times[0] - start - clock.steady_epoch_seconds(),
        "worker_bytes_per_sub_epoch": (transfers[-1] - transfers[0])
        / max((n_epochs - 1) * n_blocks, 1),
        "client_bytes_per_sub_epoch": model.driver_stats_["checkpoint_bytes"]
        / (n_epochs * n_blocks),
        # Seconds of block tasks per epoch, per worker: the epoch's floor if the 2 workers
        # shared the blocks evenly and Dask cost nothing.
        "kernel_s_per_epoch_per_worker": sum(kernel) / n_epochs / 2,
        "bit_identical": all(np.array_equal(getattr(fitted, name), getattr(local, name))
                             for name in ("user_factors_", "item_factors_", "user_bias_",
                                          "item_bias_"))}


def report(result):
    """Human-readable summary lines."""
    lines = [
        f"{result['ratings']:,} ratings, {result['users']:,} users, {result['items']:,} items, "
        f"k={result['n_factors']}, n_blocks={result['n_blocks']}, {result['cpu']} "
        f"({result['cores']} cores), load {result['load_before'][0]:.1f} -> "
        f"{result['load_after'][0]:.1f}",
        f"local, 2 threads: {result['local_epoch_s']:.3f} s/epoch"]
    for checkpoint in ("sub-epoch", "epoch"):
        side = f"dask_{checkpoint}"
        last = result[side][-1]
        lines += [
            f"dask, 2 workers x 1 thread, checkpoint={checkpoint}: "
            f"{result[side + '_epoch_s']:.3f} s/epoch ({result[side + '_ratio']:.2f} x local), "
            f"preparation {last['prepare_s']:.1f} s; block tasks "
            f"{last['kernel_s_per_epoch_per_worker']:.3f} s/epoch per worker",
            f"  per sub-epoch: {last['worker_bytes_per_sub_epoch'] / 1e6:.2f} MB between workers, "
            f"{last['client_bytes_per_sub_epoch'] / 1e6:.2f} MB to the client; bit-identical: "
            f"{all(r['bit_identical'] for r in result[side])}"]
    lines.append(f"scheduler per no-op task: {result['task_overhead_batch_s'] * 1e3:.2f} ms in "
                 f"a batch, {result['task_overhead_serial_s'] * 1e3:.2f} ms round trip")
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", default="20M", help="synthetic ratings (default 20M)")
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=8, help="Parquet files")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default=None,
                        help="folder for generated data (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="folder for dask_bench.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        result = run(parse_count(args.ratings), args.factors, args.epochs, args.blocks,
                     args.partitions, args.repeats, args.data or scratch)
    print(report(result))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "dask_bench.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
