"""tools/import_cycles.py: charrnn has no import cycle, and the tool finds one when there is.

Imports inside functions count (they run too, only later); ``if TYPE_CHECKING:`` imports
do not. The tool is run as a script on the charrnn under test (installed or checkout).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import charrnn

TOOL = Path(__file__).resolve().parents[2] / "tools" / "import_cycles.py"

pytestmark = pytest.mark.skipif(not TOOL.is_file(), reason="tools/ is not beside the tests")


def run_tool(package) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), str(package)], capture_output=True,
                          text=True, timeout=60)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text))
    return root


def test_charrnn_has_no_import_cycle():
    r = run_tool(Path(charrnn.__file__).parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok: no import cycle among ")


def test_a_function_local_import_cycle_is_found(tmp_path):
    pkg = write_package(tmp_path / "pkg", {
        "__init__.py": "",
        "model.py": """
            from .util import helper

            class Model:
                def fit(self):
                    from .trainer import train     # hidden in a function: still a cycle
                    return train(self)
            """,
        "trainer.py": "from .model import Model\n\ndef train(m):\n    return m\n",
        "util.py": "def helper():\n    pass\n",
    })
    r = run_tool(pkg)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cycle: pkg.model, pkg.trainer" in r.stdout
    assert "pkg.util" not in r.stdout


def test_type_checking_imports_do_not_count_and_subpackages_do(tmp_path):
    pkg = write_package(tmp_path / "pkg", {
        "__init__.py": "",
        "a.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .b import B                  # for annotations only: never runs
            """,
        "b.py": "from . import a\n\nclass B:\n    pass\n",
    })
    r = run_tool(pkg)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "ok: no import cycle among 3 modules"

    # importing pkg.sub.x from outside runs pkg/sub/__init__.py, which imports x
    write_package(pkg, {
        "sub/__init__.py": "from .x import X\n",
        "sub/x.py": "from ..c import C\n\nclass X:\n    pass\n",
        "c.py": "class C:\n    def f(self):\n        from .sub.x import X\n        return X\n",
    })
    r = run_tool(pkg)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cycle: pkg.c, pkg.sub, pkg.sub.x" in r.stdout
