"""The package as users install it: every subpackage shipped, task files found, the console script works.

CI (.ci/run) installs compbench non-editably and sets COMPBENCH_TEST_INSTALLED=1, so these tests
check the installed copy, not the checkout (an editable install once hid a packaging defect).
"""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import compbench

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_setuptools():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "compbench").rglob("__init__.py")}
    assert found - listed == set()


def run_installed(tmp_path, *argv):
    """Run the console script from outside the checkout, so nothing resolves to the source tree."""
    script = Path(sys.executable).parent / "compbench"
    result = subprocess.run([str(script), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_installed_ls_lists_the_three_tasks(tmp_path):
    listing = json.loads(run_installed(tmp_path, "ls", "--format", "json"))
    assert sorted(t["name"] for t in listing["tasks"]) == ["fsdd-digits", "fsdd-speakers", "rt-polarity"]


def test_installed_copy_is_tested_where_ci_says_so(tmp_path):
    script = "import compbench, compbench.tasks as t; print(compbench.__file__); print(t.tasks_dir())"
    package, tasks = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                                    check=True).stdout.split()
    assert Path(tasks, "rt-polarity.yaml").is_file()
    if os.environ.get("COMPBENCH_TEST_INSTALLED"):
        assert Path(package).resolve().parent != REPO / "compbench" and "site-packages" in package
        assert "site-packages" in tasks and Path(compbench.__file__).resolve().parent == Path(package).resolve().parent
