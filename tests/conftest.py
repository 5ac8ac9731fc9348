"""Shared fixtures. No test touches the network: the hub is switched offline here.

``COMPBENCH_TEST_DEVICE=cuda`` (set by ``tox -e gpu``) runs device-dependent tests on CUDA and
stops the session with one clear message where CUDA is absent.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

TEST_DEVICE = os.environ.get("COMPBENCH_TEST_DEVICE", "cpu")


def pytest_configure(config):
    if TEST_DEVICE == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(
            "COMPBENCH_TEST_DEVICE=cuda (tox -e gpu) needs CUDA, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). "
            "Run the default CPU env instead: tox -e py311")


@pytest.fixture
def device() -> str:
    """The device that device-dependent tests run on: cpu, or cuda under tox -e gpu."""
    return TEST_DEVICE
