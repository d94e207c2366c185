"""Where the yardstick and the data live, and the synthetic rating sets of each size.

The yardstick (a plain serial C SGD loop and the generator of its input files) is not part
of mfsgd: it is found at $MFSGD_BENCH_DIR, else at ../shared/bench relative to the repository
root, and everything that needs it is skipped when it is absent.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RATINGS_PER_USER = 50      # users = ratings / 50, items = ratings / 500: the yardstick's
RATINGS_PER_ITEM = 500     # defaults (200k users, 20k items for 10M ratings)
SKEWED_PER_USER = 30       # the skew axis: users = ratings / 30, items = ratings / 150
SKEWED_PER_ITEM = 150      # (3M ratings: 100k users, 20k items)


def bench_dir():
    """The yardstick folder (holding csrfile.py and yardstick.sh), or None."""
    candidates = [os.environ.get("MFSGD_BENCH_DIR"), REPO_ROOT / ".." / "shared" / "bench"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "csrfile.py").is_file() \
                and (Path(candidate) / "yardstick.sh").is_file():
            return Path(candidate).resolve()
    return None


def ml100k_dir():
    """MovieLens 100K ($MFSGD_ML100K, else ../shared/data/ml-100k), or None."""
    candidates = [os.environ.get("MFSGD_ML100K"), REPO_ROOT / ".." / "shared" / "data" / "ml-100k"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "u1.base").is_file() \
                and (Path(candidate) / "u1.test").is_file():
            return Path(candidate).resolve()
    return None


def parse_count(text):
    """'1M' -> 1_000_000, '20k' -> 20_000, '5000000' -> 5_000_000."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(text))
    if not match:
        raise ValueError(f"not a count: {text!r} (use e.g. 20k, 1M, 10M)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return int(round(float(match.group(1)) * scale))


def format_count(n):
    """1_000_000 -> '1M', 20_000 -> '20k' (exact multiples only)."""
    for scale, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{suffix}"
    return str(n)


def shape_for(n_ratings):
    """(users, items) for a requested number of ratings."""
    return max(n_ratings // RATINGS_PER_USER, 10), max(n_ratings // RATINGS_PER_ITEM, 10)


def make_dataset(n_ratings, directory, seed=0, bench=None):
    """Generate (or reuse) the synthetic set of `n_ratings` requested ratings.

    With the yardstick folder, its csrfile.py writes NAME.csr (the yardstick's input) and
    NAME.csr.npz (arrays u, i, r) so that mfsgd and the yardstick see identical ratings;
    csrfile.py drops duplicate (user, item) draws, so the set holds fewer ratings than
    requested. Without it, mfsgd.make_synthetic writes NAME.npz in the same format and there
    is no .csr file.

    Returns
    -------
    dict with npz, csr (or None), source, requested, users, items.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    users, items = shape_for(n_ratings)
    name = f"synth-{format_count(n_ratings)}-u{users}-i{items}-s{seed}"
    info = {"requested": n_ratings, "users": users, "items": items, "seed": seed}
    if bench is not None:
        csr = directory / f"{name}.csr"
        npz = directory / f"{name}.csr.npz"
        if not (csr.is_file() and npz.is_file()):
            subprocess.run([sys.executable, str(bench / "csrfile.py"), "synth", str(csr),
                            "--users", str(users), "--items", str(items),
                            "--ratings", str(n_ratings), "--seed", str(seed)],
                           check=True, stdout=subprocess.DEVNULL)
        return dict(info, npz=str(npz), csr=str(csr), source="csrfile.py synth")
    npz = directory / f"{name}-mfsgd.npz"
    if not npz.is_file():
        import mfsgd
        n = min(n_ratings, users * items // 2)
        u, i, r = mfsgd.make_synthetic(n_users=users, n_items=items, n_ratings=n,
                                       random_state=seed)
        np.savez(npz, u=u, i=i, r=r)
    return dict(info, npz=str(npz), csr=None, source="mfsgd.make_synthetic")


def skewed_shape(n_ratings):
    """(users, items) of a data set of the skew axis."""
    return max(n_ratings // SKEWED_PER_USER, 10), max(n_ratings // SKEWED_PER_ITEM, 10)


def make_skewed_dataset(n_ratings, skew, directory, seed=0):
    """Generate (or reuse) ``mfsgd.make_synthetic`` ratings with item popularity Zipf(`skew`).

    Users = ratings / 30 and items = ratings / 150 (so "3M" is 100k users x 20k items); the
    generator keeps exactly `n_ratings` distinct pairs.  Large, skewed sets take minutes to
    generate the first time (pairs drawn twice are redrawn); they are cached in `directory`.

    Returns
    -------
    dict as :func:`make_dataset`, with "skew".
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    users, items = skewed_shape(n_ratings)
    n_ratings = min(n_ratings, users * items // 2)
    name = f"zipf{skew:g}-{format_count(n_ratings)}-u{users}-i{items}-s{seed}-mfsgd.npz"
    npz = directory / name
    if not npz.is_file():
        import mfsgd
        u, i, r = mfsgd.make_synthetic(n_users=users, n_items=items, n_ratings=n_ratings,
                                       popularity=skew, random_state=seed)
        partial = npz.with_suffix(".partial.npz")
        np.savez(partial, u=u, i=i, r=r)
        partial.replace(npz)
    return {"requested": n_ratings, "users": users, "items": items, "seed": seed, "skew": skew,
            "npz": str(npz), "csr": None, "source": f"mfsgd.make_synthetic(popularity={skew:g})"}


def make_axis_dataset(n_ratings, skew, directory, bench=None):
    """One data set of the skew axis: the yardstick's matrix (`skew` "yardstick", which needs
    the yardstick folder `bench`) or ``mfsgd.make_synthetic`` ratings with Zipf(`skew`) item
    popularity (see :func:`make_skewed_dataset`).

    Returns
    -------
    dict as :func:`make_dataset`, with "skew".
    """
    if skew != "yardstick":
        return make_skewed_dataset(n_ratings, skew, directory)
    if bench is None:
        raise SystemExit("--skew yardstick needs the yardstick folder "
                         "($MFSGD_BENCH_DIR or ../shared/bench)")
    return dict(make_dataset(n_ratings, directory, bench=bench), skew="yardstick")
