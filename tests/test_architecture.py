"""The package's shape: public import paths that users rely on keep working after modules moved."""
import ast
import importlib
import re
from pathlib import Path

import pytest

import mfsgd

# module path -> names users import from it (README examples, docs, earlier versions).
PUBLIC_PATHS = {
    "mfsgd": ["MatrixFactorization", "Ratings", "DivergenceError", "NotFittedError",
              "NotCachedError", "clone",
              "make_synthetic", "read_ratings", "load_movielens", "__version__", "metrics",
              "model_selection"],
    "mfsgd.exceptions": ["DivergenceError", "NotFittedError", "NotCachedError"],
    "mfsgd.model": ["MatrixFactorization", "DivergenceError", "NotFittedError"],
    "mfsgd.ratings": ["Ratings", "as_ratings"],
    "mfsgd.io": ["read_ratings", "MAX_LINE_BYTES"],
    "mfsgd.datasets": ["load_movielens", "load_movielens_split", "movielens_data_home"],
    "mfsgd.synthetic": ["make_synthetic"],
    "mfsgd.metrics": ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
                      "top_k_items"],
    "mfsgd.model_selection": ["train_test_split", "KFold", "PredefinedSplit", "cross_validate",
                              "GridSearchCV", "RandomizedSearchCV", "ParameterGrid",
                              "ParameterSampler"],
    "mfsgd.recommend": ["recommend", "recommend_all", "similar_items", "similar_users"],
    "mfsgd.persistence": ["save", "load", "FORMAT_VERSION"],
    "mfsgd.cli": ["main", "build_parser"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_PATHS))
def test_public_import_paths(module):
    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC_PATHS[module] if not hasattr(imported, name)]
    assert missing == []


def test_re_export_modules_hand_out_the_implementations():
    import mfsgd
    from mfsgd import datasets, io, ratings
    from mfsgd.data import datasets as data_datasets, io as data_io, ratings as data_ratings
    assert ratings.Ratings is data_ratings.Ratings is mfsgd.Ratings
    assert ratings.as_ratings is data_ratings.as_ratings
    assert io.read_ratings is data_io.read_ratings is mfsgd.read_ratings
    assert io.MAX_LINE_BYTES == data_io.MAX_LINE_BYTES
    assert datasets.load_movielens is data_datasets.load_movielens is mfsgd.load_movielens


# ---------------------------------------------------------------- who touches private state
# A model's fitted state is reached through ``fit_state_`` (a FitState) and its public methods;
# only the model and training code work on the model's private attributes.
OWNERS_OF_MODEL_PRIVATES = ("models", "training")


def private_accesses(source):
    """(line, expression) of every access to another object's private attribute in `source`.

    Private: one leading underscore (``x._name``, or a getattr/setattr/hasattr/delattr of
    such a name).  Allowed: a module imported here on its private submodules, a class defined
    here on its own privates, and inside a function, an object on itself: the receiver of a
    method (its first parameter) and a local variable made here by a class of this module
    (``obj = cls.__new__(cls)``, ``obj = Local(...)``).
    """
    tree = ast.parse(source)
    classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    own = {}                         # id(node) -> names of objects that are "itself" there
    functions = [node for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    methods = {id(item) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
               for item in cls.body}
    for function in functions:
        names = set()
        if id(function) in methods and function.args.args:
            names.add(function.args.args[0].arg)
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                made_by = ast.unparse(node.value.func)
                if made_by.split(".")[0] in classes | names:
                    names.update(target.id for target in node.targets
                                 if isinstance(target, ast.Name))
        for node in ast.walk(function):
            own.setdefault(id(node), set()).update(names)

    def allowed(base, node):
        return isinstance(base, ast.Name) and (base.id in classes or base.id in modules
                                               or base.id in own.get(id(node), ()))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and re.match(r"_[^_]", node.attr):
            if not allowed(node.value, node):
                found.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and re.match(r"_[^_]", node.args[1].value)
              and not allowed(node.args[0], node)):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_private_access_finder_finds_what_it_should():
    source = """
import os
from . import _sgd


class Model:
    def fit(self, other):
        self._state = other._state          # other's private: found
        copy = Model.__new__(Model)
        copy._state = getattr(self, "_state", None)
        return _sgd.count(os._exit)


def read(model):
    return model._user_map, getattr(model, "_rng", None), model.fit_state_
"""
    assert sorted(expression for _, expression in private_accesses(source)) == [
        "getattr(model, '_rng', None)", "model._user_map", "other._state"]


def test_no_module_outside_models_and_training_touches_private_attributes():
    package = Path(mfsgd.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in OWNERS_OF_MODEL_PRIVATES:
            continue
        offenders += [f"{relative}:{line}: {expression}"
                      for line, expression in private_accesses(path.read_text(encoding="utf-8"))]
    assert offenders == []


def _python_runs_without_cwd(tree):
    """Calls like subprocess.run([sys.executable, "-c", ...]) or ([sys.executable, "-m",
    "mfsgd" | "benchmarks..."]) that pass no ``cwd=`` (other modules, such as venv or build, do
    not import mfsgd)."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List)):
            continue
        words = node.args[0].elts
        runs_python = (len(words) >= 2 and isinstance(words[0], ast.Attribute)
                       and words[0].attr == "executable"
                       and isinstance(words[1], ast.Constant)
                       and (words[1].value == "-c"
                            or words[1].value == "-m" and isinstance(words[2], ast.Constant)
                            and str(words[2].value).split(".")[0] in ("mfsgd", "benchmarks")))
        if runs_python and not any(keyword.arg == "cwd" for keyword in node.keywords):
            found.append(node.lineno)
    return found


def test_python_subprocesses_of_the_tests_never_start_in_the_checkout():
    """`python -c` and `python -m` put the working directory first on sys.path: started in the
    checkout (where CI runs pytest), they import the source tree, which has no compiled kernel,
    instead of the installed package. Every such call in the tests names its directory."""
    assert _python_runs_without_cwd(ast.parse(
        "subprocess.run([sys.executable, '-c', code])\n"
        "subprocess.run([sys.executable, '-c', code], cwd=tmp_path)\n"
        "subprocess.run([sys.executable, '-m', 'mfsgd', 'demo'])\n"
        "subprocess.run([sys.executable, '-m', 'venv', path])")) == [1, 3]
    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        offenders += [f"{path.name}:{line}"
                      for line in _python_runs_without_cwd(ast.parse(path.read_text()))]
    assert offenders == []
