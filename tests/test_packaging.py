"""The sdist and the wheel build from the checkout without a package index, carry the licence,
hold stripped extension modules, and the wheel works in a new virtual environment."""
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def missing_build_requirements():
    """The build-system requirements of pyproject.toml that this environment lacks (the build
    runs without isolation, so that it needs no package index)."""
    build = pytest.importorskip("build", reason="the 'build' package is needed "
                                                "(pip install build)")
    from packaging.requirements import Requirement
    missing = []
    for text in sorted(build.ProjectBuilder(str(ROOT)).build_system_requires):
        requirement = Requirement(text)
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(f"{text} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (found {installed})")
    return missing


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel, build log) built from the checkout with `python -m build --no-isolation`."""
    if not (ROOT / "setup.py").is_file():
        pytest.skip("not running from a source checkout")
    missing = missing_build_requirements()
    if missing:
        pytest.skip("building without a package index needs the build requirements installed: "
                    f"missing {', '.join(missing)}; pip install '.[test]'")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                             str(out), str(ROOT)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return (next(out.glob("mfsgd-*.tar.gz")), next(out.glob("mfsgd-*.whl")),
            result.stdout + result.stderr)


@pytest.mark.slow
def test_the_build_warns_of_nothing_in_the_manifest_or_the_metadata(dists):
    log = dists[2]
    problems = [line for line in log.splitlines()
                if re.search(r"no (previously-included )?files (found )?matching|"
                             r"[Dd]eprecat\w* .*licen[cs]e|license.* is deprecated", line)]
    assert problems == []


@pytest.mark.slow
def test_the_licence_is_in_the_sdist_and_the_wheel_metadata(dists):
    sdist, wheel, _ = dists
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "setup.py", "pyproject.toml", "mfsgd/_kernels/_sgd.pyx",
            "mfsgd/_kernels/_topn.pyx", "mfsgd/_kernels/_kernels.h",
            "mfsgd/_kernels/_kernels_impl.h", "mfsgd/_kernels/_svdpp.pyx",
            "mfsgd/_kernels/_svdpp.h", "mfsgd/_kernels/_svdpp_impl.h"} <= names
    # generated at build time
    assert not {"mfsgd/_kernels/_sgd.c", "mfsgd/_kernels/_topn.c",
                "mfsgd/_kernels/_svdpp.c"} & names
    with zipfile.ZipFile(wheel) as archive:
        info = next(name.split("/")[0] for name in archive.namelist()
                    if name.endswith(".dist-info/METADATA"))
        fields = archive.read(f"{info}/METADATA").decode().split("\n\n")[0].splitlines()
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
    assert "License-Expression: BSD-3-Clause" in fields
    assert "License-File: LICENSE" in fields
    assert licence == (ROOT / "LICENSE").read_text() and "BSD 3-Clause" in licence


@pytest.mark.slow
def test_the_version_is_written_once_and_reaches_the_metadata(dists):
    import ast
    source = (ROOT / "mfsgd" / "_version.py").read_text()
    version = next(node.value.value for node in ast.parse(source).body
                   if isinstance(node, ast.Assign) and node.targets[0].id == "__version__")
    assert "version" not in _project_table(ROOT / "pyproject.toml")
    assert dists[0].name == f"mfsgd-{version}.tar.gz"
    with zipfile.ZipFile(dists[1]) as archive:
        info = next(name.split("/")[0] for name in archive.namelist()
                    if name.endswith(".dist-info/METADATA"))
        fields = archive.read(f"{info}/METADATA").decode().split("\n\n")[0].splitlines()
    assert f"Version: {version}" in fields


def _project_table(path):
    """The keys of pyproject.toml's [project] table (a plain reader: tomllib needs 3.11)."""
    keys, inside = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("["):
            inside = line.strip() == "[project]"
        elif inside and "=" in line and not line.startswith((" ", "\t")):
            keys.add(line.split("=", 1)[0].strip())
    return keys


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF files are Linux's")
def test_the_extension_modules_carry_no_debug_information(dists):
    with zipfile.ZipFile(dists[1]) as archive:
        modules = {name: archive.read(name) for name in archive.namelist()
                   if name.endswith(".so")}
    assert len(modules) == 3
    for name, data in modules.items():
        assert data[:4] == b"\x7fELF"
        sections = elf_section_names(data)
        assert ".text" in sections and ".dynsym" in sections, name
        assert not [s for s in sections if s.startswith(".debug") or s == ".symtab"], name


def elf_section_names(data):
    """The section names of a 64-bit little-endian ELF file."""
    import struct
    assert data[4] == 2 and data[5] == 1, "not a 64-bit little-endian ELF file"
    section_offset, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, section_offset + i * entry_size)
               for i in range(count)]
    names_at = headers[names_index][4]
    return {data[names_at + header[0]:data.index(b"\0", names_at + header[0])].decode()
            for header in headers}


@pytest.mark.slow
def test_the_wheel_installs_and_runs_in_a_fresh_venv(dists, tmp_path):
    wheel = dists[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--force-reinstall", str(wheel)], check=True, capture_output=True, timeout=600)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = ("import mfsgd, numpy as np; print(mfsgd.__file__);"
            "u, i, r = mfsgd.make_synthetic(n_users=100, n_items=50, n_ratings=2000);"
            "m = mfsgd.MatrixFactorization(n_factors=4, n_epochs=3, random_state=0).fit((u, i, r));"
            "print(round(m.score((u, i, r)), 3))")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(python), "-c", code], cwd=outside, capture_output=True,
                            text=True, check=True, env=clean_env)
    location, rmse = result.stdout.split()
    assert str(venv) in location and float(rmse) < 1.5
    demo = subprocess.run([str(venv / "bin" / "mfsgd"), "demo"], cwd=outside,
                          capture_output=True, text=True, timeout=300, env=clean_env)
    assert demo.returncode == 0 and "noise floor" in demo.stdout
