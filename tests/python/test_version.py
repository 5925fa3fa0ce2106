"""The version is written once (CMakeLists.txt's project() line) and reaches Python and C++ alike."""

import re
from importlib.metadata import version
from pathlib import Path

import pytest

import spikeops


def test_python_and_core_report_the_same_version():
    assert spikeops.__version__ == version("spikeops")
    assert spikeops.__version__ == spikeops.build_info()["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", spikeops.__version__)


def test_version_is_cmakes_project_version():
    cmake = Path(__file__).resolve().parents[2] / "CMakeLists.txt"
    if not cmake.exists():
        pytest.skip("the tests run from a copy without the project's sources")
    match = re.search(r"project\(spikeops VERSION (\S+)", cmake.read_text())
    assert match and match.group(1) == spikeops.__version__
