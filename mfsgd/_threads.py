"""How many threads mfsgd may use, and how its idle OpenMP threads wait.

Two things make extra threads cost more than they give on a small problem or a busy machine:

- OpenMP runtimes keep an idle thread spinning after every parallel region and at every
  barrier, by default (GNU libgomp for 300,000 pause instructions, LLVM's libomp for 200 ms),
  taking a core from whatever else wants to run, including this process's own other threads.
  :func:`passive_openmp_waiting` asks the runtime to put idle threads to sleep at once.
- More threads than CPUs: the CPU count of the machine can exceed the CPUs this process may
  use (an affinity mask, a container's CPU quota).  :func:`usable_cpus` counts the latter.

How many of those threads one parallel step gets, by its amount of work, is decided next to
the step (``mfsgd._kernels._sgd``).
"""
import contextlib
import os
from pathlib import Path

#: Environment variables that choose how OpenMP threads wait; when any of them is set, mfsgd
#: leaves the choice to the user.
WAIT_POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


@contextlib.contextmanager
def passive_openmp_waiting():
    """Ask an OpenMP runtime loaded inside this block to let idle threads sleep, not spin.

    Runtimes read ``OMP_WAIT_POLICY`` once, when they are loaded, so this must wrap the first
    import of a compiled module linking one.  Nothing changes when the user has set any of
    :data:`WAIT_POLICY_VARIABLES`, or when the runtime was already loaded by another module
    (it then keeps the policy it started with).  The variable is removed again on exit, so
    that child processes do not inherit it.
    """
    if any(name in os.environ for name in WAIT_POLICY_VARIABLES):
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


def usable_cpus(cgroup_root=Path("/sys/fs/cgroup"), own_cgroup=Path("/proc/self/cgroup")):
    """Number of CPUs this process can use at once.

    The CPUs of its affinity mask (all CPUs where the platform has no affinity), capped by the
    smallest CPU quota of its cgroups (:func:`cgroup_cpu_quota`, as ``docker run --cpus``
    sets), rounded to the nearest whole CPU; at least 1.

    Parameters
    ----------
    cgroup_root, own_cgroup : pathlib.Path
        Where the cgroup hierarchies are mounted, and the file naming this process's cgroups.
    """
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n_cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, own_cgroup)
    if quota is not None:
        n_cpus = min(n_cpus, int(quota + 0.5))
    return max(1, n_cpus)


def cgroup_cpu_quota(cgroup_root=Path("/sys/fs/cgroup"), own_cgroup=Path("/proc/self/cgroup")):
    """The smallest CPU quota, in CPUs, from this process's cgroup up to the root of its
    hierarchy, or None when there is none or it cannot be read.

    Reads ``cpu.max`` under `cgroup_root` for cgroup v2, and ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` under ``cgroup_root/<controllers>`` for a cgroup v1 hierarchy
    holding the cpu controller.
    """
    try:
        lines = own_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        number, controllers, path = fields
        if number == "0" and controllers == "":
            quotas += _quotas_up(cgroup_root, path, _read_cpu_max)
        elif "cpu" in controllers.split(","):
            quotas += _quotas_up(cgroup_root / controllers, path, _read_cfs_quota)
    return min(quotas) if quotas else None


def _quotas_up(root, path, read):
    """Quotas that `read` finds in the cgroup folder `path` under `root` and its ancestors."""
    folder = root / path.strip().lstrip("/")
    quotas = []
    while True:
        quota = read(folder)
        if quota is not None:
            quotas.append(quota)
        if folder == root or root not in folder.parents:
            return quotas
        folder = folder.parent


def _quota(quota, period):
    try:
        quota, period = int(quota), int(period)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read_cpu_max(folder):
    """CPUs allowed by a v2 ``cpu.max`` file ("QUOTA PERIOD" or "max PERIOD"), or None."""
    try:
        fields = (folder / "cpu.max").read_text().split()
    except OSError:
        return None
    return _quota(*fields) if len(fields) == 2 else None


def _read_cfs_quota(folder):
    """CPUs allowed by v1 ``cpu.cfs_quota_us`` (-1: no limit) and ``cpu.cfs_period_us``."""
    try:
        return _quota((folder / "cpu.cfs_quota_us").read_text().strip(),
                      (folder / "cpu.cfs_period_us").read_text().strip())
    except OSError:
        return None
