"""Thread count and OpenMP wait policy: the CPUs a process may use, passive waiting."""
import os
import subprocess
import sys

import pytest

import mfsgd
from mfsgd import _threads


def _cgroup_tree(tmp_path, own, files):
    """A fake cgroup mount under tmp_path/fs: `files` maps relative paths to their text."""
    root = tmp_path / "fs"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    own_file = tmp_path / "cgroup"
    own_file.write_text(own)
    return root, own_file


def test_cgroup_v2_quota_is_the_smallest_on_the_path_to_the_root(tmp_path):
    root, own = _cgroup_tree(tmp_path, "0::/outer/inner\n", {
        "cpu.max": "max 100000\n",
        "outer/cpu.max": "150000 100000\n",
        "outer/inner/cpu.max": "max 100000\n",
    })
    assert _threads.cgroup_cpu_quota(root, own) == pytest.approx(1.5)
    assert _threads.usable_cpus(root, own) == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v1_cfs_quota_and_no_limit(tmp_path):
    root, own = _cgroup_tree(tmp_path, "4:memory:/x\n3:cpu,cpuacct:/box\n0::/\n", {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/box/cpu.cfs_quota_us": "50000\n",
        "cpu,cpuacct/box/cpu.cfs_period_us": "100000\n",
    })
    assert _threads.cgroup_cpu_quota(root, own) == pytest.approx(0.5)
    assert _threads.usable_cpus(root, own) == 1  # a quota under one CPU still runs one thread
    root, own = _cgroup_tree(tmp_path / "free", "3:cpu,cpuacct:/\n", {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert _threads.cgroup_cpu_quota(root, own) is None


def test_unreadable_or_garbled_cgroup_files_mean_no_quota(tmp_path):
    assert _threads.cgroup_cpu_quota(tmp_path, tmp_path / "missing") is None
    root, own = _cgroup_tree(tmp_path, "garbage\n0::/a\n", {"a/cpu.max": "lots of cpus\n"})
    assert _threads.cgroup_cpu_quota(root, own) is None


def test_default_thread_count_is_the_usable_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert mfsgd.MatrixFactorization()._thread_count() == 1
    assert mfsgd.MatrixFactorization(n_threads=4)._thread_count() == 4


def test_passive_waiting_sets_the_policy_only_inside_and_respects_the_user(monkeypatch):
    for name in _threads.WAIT_POLICY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with _threads.passive_openmp_waiting():
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("GOMP_SPINCOUNT", "1000")
    with _threads.passive_openmp_waiting():
        assert "OMP_WAIT_POLICY" not in os.environ
    assert os.environ["GOMP_SPINCOUNT"] == "1000"


IDLE_CPU_AFTER_FITS = """
import os, time
import mfsgd
from mfsgd import _sgd
assert "OMP_WAIT_POLICY" not in os.environ, "the wait policy leaked into the environment"
_sgd.MIN_WORK_PER_THREAD = 0  # parallel sub-epochs even on this small set
u, i, r = mfsgd.make_synthetic(n_users=3000, n_items=600, n_ratings=60_000, random_state=0)
model = mfsgd.MatrixFactorization(n_factors=16, n_epochs=2, n_threads=2, random_state=0)
burnt = 0.0
for _ in range(5):
    model.fit((u, i, r))
    before = time.process_time()
    time.sleep(0.05)
    burnt += time.process_time() - before
print(burnt)
"""


@pytest.mark.skipif(not mfsgd._sgd.HAVE_OPENMP, reason="built without OpenMP")
def test_threads_do_not_spin_after_training(tmp_path):
    """Regression: OpenMP's default policy kept a thread busy-waiting for milliseconds after
    each parallel step, taking a core from everything else on the machine."""
    env = {k: v for k, v in os.environ.items() if k not in _threads.WAIT_POLICY_VARIABLES}
    run = subprocess.run([sys.executable, "-c", IDLE_CPU_AFTER_FITS], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    burnt = float(run.stdout.split()[-1])
    assert burnt < 0.005, f"{burnt * 1e3:.1f} ms of CPU used during 250 ms of sleep after fits"
