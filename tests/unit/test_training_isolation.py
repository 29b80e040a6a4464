"""The training job runs without the web stack: torch, NumPy and the standard library only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from tests import training_data

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("flask", "sqlalchemy", "pandas", "coordinator", "marshmallow", "celery", "boto3",
           "aggregation", "integrations", "babel")

GUARD = textwrap.dedent(f"""
    import importlib.abc, importlib.machinery, sys
    BLOCKED = {BLOCKED!r}

    class Refuse(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        # Asking whether a package exists is allowed (torch probes for pandas); loading
        # one is refused.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                return importlib.machinery.ModuleSpec(name, self)
            return None

        def create_module(self, spec):
            raise ImportError(f"the training job may not import {{spec.name}}")

        def exec_module(self, module):
            raise ImportError(f"the training job may not import {{module.__name__}}")

    sys.meta_path.insert(0, Refuse())
""")


def _loaded_by_torch_and_numpy() -> list[str]:
    """Return the top-level modules a fresh ``import torch, numpy`` loads, in a subprocess."""
    script = ("import sys, json, torch, numpy\n"
              "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _installed_with_torch_and_numpy() -> set[str]:
    """Return the top-level modules of torch, NumPy and the distributions they require.

    torch imports some of its own requirements only when a feature needs them (sympy and
    mpmath while training), so a fresh ``import torch`` does not list them all.
    """
    wanted, todo = set(), ["torch", "numpy"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in wanted:
            continue
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        wanted.add(name)
        todo += [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in requires
                 if "extra ==" not in r]
    return {module for module, dists in metadata.packages_distributions().items()
            if any(re.sub(r"[-_.]+", "-", d).lower() in wanted for d in dists)}


#: Modules made at run time rather than installed: the interpreter's build data, the
#: runtime of Cython-compiled extensions (NumPy's), and the module torch.distributed.nn
#: generates from a template.
GENERATED = re.compile(r"_sysconfigdata_.*|_?cython_.*|_remote_module_non_scriptable")


def test_the_job_runs_with_the_web_stack_refused(tmp_path):
    # An allowlist: anything outside the standard library, torch, NumPy and what they
    # require, and `training` is a leak, whatever its name.
    allowed = sorted({*sys.stdlib_module_names, *_loaded_by_torch_and_numpy(),
                      *_installed_with_torch_and_numpy(), "training"})
    folder = training_data.write(tmp_path / "data", training_data.items(30))
    script = GUARD + textwrap.dedent(f"""
        import training, training.dataset, training.features, training.crossfit
        import training.metrics, training.outputs, training.job
        import re
        from training.__main__ import main
        code = main(["--dataset", {str(folder)!r}, "--out", {str(tmp_path / "out")!r},
                     "--device", "cpu", "--folds", "2", "--epochs", "1", "--buckets", "4096"])
        allowed = set({allowed!r})
        leaked = sorted(n for n in {{m.split(".")[0] for m in sys.modules}} - allowed
                        if not re.fullmatch({GENERATED.pattern!r}, n))
        assert not leaked, f"the training job imported {{leaked}}"
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "predictions.jsonl.gz").is_file()


def test_the_guard_itself_refuses(tmp_path):
    script = GUARD + "import flask\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "may not import flask" in done.stderr
