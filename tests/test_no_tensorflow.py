"""The edge side must import with TensorFlow, Keras and coremltools made impossible to import."""

import subprocess
import sys

BLOCKER = """
import importlib.abc, sys
BLOCKED = ("tensorflow", "keras", "tf_keras", "coremltools", "tensorflow_model_optimization")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=120)


def test_edge_runtime_imports_without_tensorflow():
    proc = _run(
        "import pkgutil, importlib, edge_runtime\n"
        "for m in pkgutil.walk_packages(edge_runtime.__path__, 'edge_runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok', sorted(k for k in sys.modules if k.split('.')[0] in BLOCKED))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok []"


def test_cli_help_works_without_tensorflow():
    proc = _run("from dermedge.cli import app\nimport sys\nsys.argv=['dermedge','--help']\napp()\n")
    assert "train" in proc.stdout, proc.stderr


def test_training_without_the_extra_gives_an_install_hint(tmp_path):
    proc = _run(
        "from dermedge.cli import app\nimport sys\n"
        f"sys.argv=['dermedge','train','segment','--images','{tmp_path}']\napp()\n"
    )
    assert proc.returncode == 2
    assert 'pip install "dermedge[train]"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_predict_example_runs_on_the_default_bundle_without_tensorflow():
    """What a fresh base install does first: the shipped bundle, the edge runtime, no TensorFlow."""
    proc = _run("from dermedge.cli import app\nimport sys\n"
                "sys.argv=['dermedge','predict','--example','--json','-']\napp()\n")
    assert proc.returncode == 0, proc.stderr
    import json

    report = json.loads(proc.stdout)
    assert report["backend"] == "ai_edge_litert" and report["synthetic"] is True
    assert len(report["results"]) == 1 and report["results"][0]["label"] in report["labels"]
