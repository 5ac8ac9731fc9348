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

import pytest
from conftest import INSTALLED_SCRIPT_GROUP

import compbench

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_setuptools():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "compbench").rglob("__init__.py")}
    assert found - listed == set()


@pytest.fixture(scope="module")
def installed_ls(tmp_path_factory):
    """``compbench ls --format json`` run by the installed console script, in a new interpreter outside the
    checkout (so nothing resolves to the source tree), which then says where compbench and its task files came
    from and which heavy modules the command loaded: (the listing, those facts)."""
    script = Path(sys.executable).parent / "compbench"
    probe = "\n".join([
        "import json, runpy, sys",
        f"sys.argv = [{str(script)!r}, 'ls', '--format', 'json']",
        "try:",
        "    runpy.run_path(sys.argv[0], run_name='__main__')  # the script the installer wrote, as its shell runs it",
        "except SystemExit as end:",
        "    assert not end.code, end.code",
        "import compbench, compbench.tasks as tasks",
        "print(json.dumps({'package': compbench.__file__, 'tasks': str(tasks.tasks_dir()),",
        f"                  'loaded': sorted(set(sys.modules) & set({sorted(LOADED_WHERE_USED)!r}))}}))"])
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path_factory.mktemp("outside"), capture_output=True,
                         text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    listing, _, facts = run.stdout.rstrip("\n").rpartition("\n")
    return json.loads(listing), json.loads(facts)


@INSTALLED_SCRIPT_GROUP
def test_installed_ls_lists_the_four_tasks(installed_ls):
    listing, _ = installed_ls
    assert sorted(t["name"] for t in listing["tasks"]) == ["fsdd-digits", "fsdd-sequences", "fsdd-speakers",
                                                           "rt-polarity"]


@INSTALLED_SCRIPT_GROUP
def test_installed_copy_is_tested_where_ci_says_so(installed_ls):
    _, facts = installed_ls
    package, tasks = facts["package"], facts["tasks"]
    assert Path(tasks, "rt-polarity.yaml").is_file()
    if os.environ.get("COMPBENCH_TEST_INSTALLED"):
        assert Path(package).resolve().parent != REPO / "compbench" and "site-packages" in package
        assert "site-packages" in tasks and Path(compbench.__file__).resolve().parent == Path(package).resolve().parent


# modules that cost a second or more to import on 2 cores and that only some verbs use: they are imported where
# they are used, so every command (and every sweep worker) starts faster. (Not among them: torch's compiler, which
# transformers' model code imports, and onnxruntime, whose version `ls` reports.)
LOADED_WHERE_USED = {"matplotlib", "onnx", "onnxscript", "ray"}


@INSTALLED_SCRIPT_GROUP
def test_compbench_ls_imports_no_charts_onnx_exporter_or_ray(installed_ls):
    assert installed_ls[1]["loaded"] == []
