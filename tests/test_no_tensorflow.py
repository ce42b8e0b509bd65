"""The edge side must import with TensorFlow, Keras and coremltools made impossible to import."""

import subprocess
import sys

import pytest
from time_limits import seconds

pytestmark = pytest.mark.runtime  # base install only

BLOCKER = """
import importlib.abc, sys
BLOCKED = ("tensorflow", "keras", "tf_keras", "coremltools", "tensorflow_model_optimization")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
"""


def _run(code: str, block: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", (BLOCKER if block else "") + code], capture_output=True, text=True,
                          timeout=seconds(120))


def test_edge_runtime_imports_without_tensorflow():
    proc = _run(
        "import pkgutil, importlib, edge_runtime\n"
        "for m in pkgutil.walk_packages(edge_runtime.__path__, 'edge_runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok', sorted(k for k in sys.modules if k.split('.')[0] in BLOCKED))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok []"


COMMANDS = {"train", "export", "predict", "stream", "evaluate", "benchmark", "info", "pack", "calibrate", "explain"}
HEAVY = ("tensorflow", "keras", "tf_keras", "coremltools", "tensorflow_model_optimization", "sklearn", "scipy")


@pytest.mark.parametrize("block", [True, False], ids=["tensorflow-blocked", "tensorflow-importable"])
def test_cli_help_works_without_tensorflow(block):
    """`dermedge --help` lists every command, and does not import TensorFlow (nor the [eval] extra's
    scikit-learn) even where it is installed: where it is importable, a lazy import gone eager would
    show up in sys.modules; where it is blocked, it would fail the help."""
    proc = _run("import sys\nfrom dermedge.commands.cli import app\nsys.argv=['dermedge','--help']\ntry:\n    app()\n"
                f"finally:\n    print('imported:', sorted({{k.split('.')[0] for k in sys.modules}} & set({HEAVY!r})))\n",
                block)
    assert proc.returncode == 0, proc.stderr
    *help_lines, imported = proc.stdout.strip().splitlines()
    panel = "\n".join(help_lines).split("Commands")[1]
    listed = {line.strip("│ ").split()[0] for line in panel.splitlines()[1:] if line.startswith("│ ") and line[2] != " "}
    assert listed == COMMANDS, panel
    assert imported == "imported: []"


def test_training_without_the_extra_gives_an_install_hint(tmp_path):
    proc = _run(
        "from dermedge.commands.cli import app\nimport sys\n"
        f"sys.argv=['dermedge','train','segment','--images','{tmp_path}']\napp()\n"
    )
    assert proc.returncode == 2
    assert 'pip install "dermedge[train]"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_predict_example_runs_on_the_default_bundle_without_tensorflow():
    """What a fresh base install does first: the shipped bundle, the edge runtime, no TensorFlow."""
    proc = _run("from dermedge.commands.cli import app\nimport sys\n"
                "sys.argv=['dermedge','predict','--example','--json','-']\napp()\n")
    assert proc.returncode == 0, proc.stderr
    import json

    report = json.loads(proc.stdout)
    assert report["backend"] == "ai_edge_litert" and report["synthetic"] is True
    assert len(report["results"]) == 1 and report["results"][0]["label"] in report["labels"]
