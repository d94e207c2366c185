"""Run the external yardstick (a plain serial C SGD loop) on a .csr file."""
import re
import resource
import subprocess
import time

from .measure import _busy_cpu_seconds, other_load


def run_yardstick(bench, csr_path, k, epochs, timeout=3600):
    """Median million rating updates per second of the yardstick at factor count `k`.

    Returns a dict with median_mupd_s, the per-epoch rates and other_load_cores (CPU used by
    other processes meanwhile, in cores; it includes the yardstick's own compile step), or None when the yardstick
    fails (its stderr is then in "error").
    """
    def children_cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    busy0, own0, start = _busy_cpu_seconds(), children_cpu(), time.perf_counter()
    result = subprocess.run([str(bench / "yardstick.sh"), str(csr_path), str(k), str(epochs)],
                            capture_output=True, text=True, timeout=timeout)
    wall, busy1, own1 = time.perf_counter() - start, _busy_cpu_seconds(), children_cpu()
    other = other_load(busy1 - busy0, own1 - own0, wall) if busy0 is not None else None
    match = re.search(r"^median_mupd_s\s+([0-9.eE+-]+)\s*$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not match:
        return {"k": k, "median_mupd_s": None,
                "error": (result.stderr or result.stdout).strip()[-500:]}
    epochs_out = [float(m) for m in re.findall(r"([0-9.]+) Mupd/s", result.stdout)]
    return {"k": k, "median_mupd_s": float(match.group(1)), "epoch_mupd_s": epochs_out,
            "other_load_cores": other}
