"""The training job runs without the web stack: torch, NumPy and the standard library only."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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


def test_the_job_runs_with_the_web_stack_refused(tmp_path):
    folder = training_data.write(tmp_path / "data", training_data.items(30))
    script = GUARD + textwrap.dedent(f"""
        import training, training.dataset, training.features, training.crossfit
        import training.metrics, training.outputs, training.job
        from training.__main__ import main
        code = main(["--dataset", {str(folder)!r}, "--out", {str(tmp_path / "out")!r},
                     "--device", "cpu", "--folds", "2", "--epochs", "1", "--buckets", "4096"])
        leaked = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
        assert not leaked, leaked
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
