"""No code path can execute what a downloaded file says.

A static check (``ast``, so comments and strings do not count) over zoo/, examples/ and perf/: no
``pickle.load(s)`` / ``Unpickler`` (nor dill, cloudpickle, pandas.read_pickle), ``torch.load`` only
with ``weights_only=True``, ``numpy.load`` never with ``allow_pickle=True``, never
``trust_remote_code=True``. And plugins are loaded only from installed entry points, by registry
name: a run records names, never import paths, and an import path given as a name is refused.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from zoo import registry
from zoo.errors import PluginError

from .conftest import REPO, assert_user_error, bench_sst2, edited_copy, invoke, train_args, train_in_process

SCANNED = ("zoo", "examples", "perf")
UNPICKLERS = {f"{m}.{f}" for m in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib")
              for f in ("load", "loads", "Unpickler")} | {"pandas.read_pickle", "shelve.open", "marshal.loads"}
TORCH_LOADS = {"torch.load", "torch.serialization.load"}


class Checker(ast.NodeVisitor):
    """Finds unsafe deserialisation in one module, resolving import aliases."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.aliases: dict[str, str] = {}
        self.problems: list[str] = []
        self._called: set[int] = set()

    def _where(self, node: ast.AST) -> str:
        return f"{self.filename}:{getattr(node, 'lineno', '?')}"

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                self.aliases.setdefault(a.name.split(".")[0], a.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def qualname(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualname(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if name in TORCH_LOADS:
            self._called.add(id(node.func))
            wo = kw.get("weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                self.problems.append(f"{self._where(node)}: {name}() without weights_only=True")
        if name in ("numpy.load",) and "allow_pickle" in kw:
            ap = kw["allow_pickle"]
            if not (isinstance(ap, ast.Constant) and ap.value is False):
                self.problems.append(f"{self._where(node)}: numpy.load(allow_pickle=...) may unpickle")
        trc = kw.get("trust_remote_code")
        if trc is not None and not (isinstance(trc, ast.Constant) and trc.value is False):
            self.problems.append(f"{self._where(node)}: trust_remote_code={ast.unparse(trc)}")
        for value in node.keywords:  # **{"trust_remote_code": True}
            if value.arg is None and isinstance(value.value, ast.Dict):
                for k in value.value.keys:
                    if isinstance(k, ast.Constant) and k.value == "trust_remote_code":
                        self.problems.append(f"{self._where(node)}: trust_remote_code passed in **kwargs")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._reference(node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._reference(node)

    def _reference(self, node: ast.AST) -> None:
        name = self.qualname(node)
        if name in UNPICKLERS:
            self.problems.append(f"{self._where(node)}: uses {name}")
        elif name in TORCH_LOADS and id(node) not in self._called:
            self.problems.append(f"{self._where(node)}: {name} referenced without a checked call")


def scan(source: str, filename: str = "<source>") -> list[str]:
    checker = Checker(filename)
    tree = ast.parse(source, filename)
    # imports first, so that aliases defined anywhere in the module are known
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            checker.visit_Import(node)
        elif isinstance(node, ast.ImportFrom):
            checker.visit_ImportFrom(node)
    checker.visit(tree)
    return checker.problems


def python_files() -> list[Path]:
    files = [p for d in SCANNED if (REPO / d).is_dir() for p in sorted((REPO / d).rglob("*.py"))]
    return [p for p in files if not any(part.startswith(".") or part in ("build", "__pycache__")
                                        for part in p.relative_to(REPO).parts)]


def test_the_checker_finds_what_it_must_and_ignores_comments_and_strings() -> None:
    bad = '''
import pickle
import pickle as pk
from pickle import loads as fast_loads
import torch
import torch as T
from torch import load
import numpy as np
from transformers import AutoModel
pickle.load(f)
pk.loads(b)
fast_loads(b)
torch.load("x.pt")
T.load("x.pt", weights_only=False)
load("x.pt", map_location="cpu")
loader = torch.load
np.load("x.npy", allow_pickle=True)
AutoModel.from_pretrained("x", trust_remote_code=True)
AutoModel.from_pretrained("x", trust_remote_code=flag)
AutoModel.from_pretrained("x", **{"trust_remote_code": True})
'''
    problems = scan(bad)
    lines = sorted(int(p.split(":")[1]) for p in problems)
    assert lines == list(range(10, 21)), problems
    good = '''
# pickle.load(f) and torch.load(x) in a comment
"""torch.load("x.pt") and trust_remote_code=True in a docstring"""
import torch
import numpy as np
from safetensors.torch import load_file
text = "pickle.loads(data)"
torch.load("x.pt", weights_only=True, map_location="cpu")
np.load("x.npy", allow_pickle=False)
np.load("x.npy")
load_file("x.safetensors")
model.load_state_dict(state)
json.loads(s)
AutoModel.from_pretrained("x", trust_remote_code=False)
'''
    assert scan(good) == []


def test_no_unsafe_deserialisation_in_the_code() -> None:
    files = python_files()
    assert len(files) > 30 and any(p.parts[-2] == "train" for p in files)
    problems = [msg for p in files for msg in scan(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))]
    assert not problems, "\n".join(problems)


# --- plugins by registry name only ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> Path:
    return train_in_process(tmp_path_factory.mktemp("security") / "run", corpus, cache_dir, "mlm+nsp", "bert", 2, 0)


def _strings(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (str(k), *_strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return [obj] if isinstance(obj, str) else []


def test_runs_record_registry_names_never_import_paths(tiny_run: Path) -> None:
    plugins = [registry.info("objective", n) for n in ("mlm", "nsp")] + [registry.info("backbone", "bert")]
    forbidden = {p.value for p in plugins} | {p.value.partition(":")[0] for p in plugins} | \
        {p.value.partition(":")[2] for p in plugins}
    step = next(tiny_run.glob("step-*"))
    documents = {name: json.loads((tiny_run / name).read_text()) for name in ("run.json", "config.json")}
    documents["trainer.json"] = json.loads((step / "trainer.json").read_text())
    for tensors in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        with safe_open(str(step / tensors), "pt") as f:
            documents[tensors] = {"metadata": f.metadata() or {}, "keys": list(f.keys())}
    for name, doc in documents.items():
        for s in _strings(doc):
            assert not any(f in s for f in forbidden), f"{name} holds an import path: {s!r}"
            assert "py/object" not in s and "__reduce__" not in s, f"{name}: {s!r}"
    info, state = documents["run.json"], documents["trainer.json"]
    assert (info["objective"], info["backbone"]) == ("mlm+nsp", "bert")
    assert (state["objective"], state["backbone"]) == ("mlm+nsp", "bert")
    assert set(info["plugins"]) == {"objective:mlm", "objective:nsp", "backbone:bert"}
    assert all(v == registry.info(k.split(":")[0], k.split(":")[1]).version for k, v in info["plugins"].items())


@pytest.mark.parametrize(("kind", "flag"), [("objective", "--objective"), ("backbone", "--backbone")])
def test_an_import_path_is_not_a_plugin_name(tmp_path: Path, corpus: Path, kind: str, flag: str) -> None:
    value = registry.info(kind, "mlm" if kind == "objective" else "bert").value  # e.g. zoo.objectives.mlm:MaskedLM
    module = value.partition(":")[0]
    for name in (value, module):
        with pytest.raises(PluginError, match=f"unknown {kind}"):
            registry.load(kind, name)
        args = train_args(tmp_path / "r", corpus, "mlm", "bert", 1, 0, "--dry-run")
        args[args.index(flag) + 1] = name
        code, out = invoke(args)
        # ("mlm:2" is a weighted objective, so the full path is refused as a bad weight)
        assert_user_error(code, out, f"unknown {kind} {name!r}" if name == module or kind == "backbone" else
                          f"objective spec {name!r}")
        assert not (tmp_path / "r").exists()


def test_a_tampered_run_cannot_make_zoo_import_a_module(tiny_run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run directory naming a module as its backbone is refused; the module is never imported."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_backbone.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Backbone: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = edited_copy(tiny_run, tmp_path / "run", backbone="evil_backbone:Backbone")
    code, out = bench_sst2(run, tmp_path)
    assert_user_error(code, out, "unknown backbone 'evil_backbone:Backbone'")
    assert not marker.exists() and "evil_backbone" not in sys.modules
