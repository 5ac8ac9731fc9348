"""The environment block of a record."""

import subprocess

import torch
import transformers

import compbench
from compbench.environment import environment, git_commit


def make_repo(path):
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_environment_names_the_libraries():
    env = environment()
    assert env["torch"] == torch.__version__ and env["transformers"] == transformers.__version__
    assert env["compbench"] == compbench.__version__ and env["cpu"]


def test_commit_of_a_checkout(tmp_path, monkeypatch):
    commit = make_repo(tmp_path)
    (tmp_path / "compbench").mkdir()
    monkeypatch.setattr(compbench, "__file__", str(tmp_path / "compbench" / "__init__.py"))
    assert git_commit() == commit


def test_no_commit_for_a_copy_installed_inside_another_repository(tmp_path, monkeypatch):
    make_repo(tmp_path)
    installed = tmp_path / "venv" / "site-packages" / "compbench"
    installed.mkdir(parents=True)
    monkeypatch.setattr(compbench, "__file__", str(installed / "__init__.py"))
    assert git_commit() is None
