"""`rgsd --version`, and rgsd's log level applies to rgsd's loggers only (other libraries stay at WARNING)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest
from conftest import REPO

import rgsd


def test_version_prints_the_installed_package_version():
    out = subprocess.run([sys.executable, "-m", "rgsd.cli", "--version"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"rgsd {version('rgsd')}" == f"rgsd {rgsd.__version__}"


# main() sets logging up (no command: it prints the help), then a library and rgsd each log a line per level.
_LOG_LINES = (
    "import logging, sys; from rgsd import cli; cli.main(sys.argv[1:]); "
    "[logging.getLogger(n).log(lvl, f'{n} {logging.getLevelName(lvl)}') for n in ('httpx', 'rgsd.train.trainer') "
    "for lvl in (logging.DEBUG, logging.INFO, logging.WARNING)]"
)


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_info_lines_stay_off_stderr(verbose):
    argv = ["-v"] if verbose else []
    out = subprocess.run([sys.executable, "-c", _LOG_LINES, *argv], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    err = out.stderr
    assert "httpx DEBUG" not in err and "httpx INFO" not in err and "httpx WARNING" in err
    assert "rgsd.train.trainer INFO" in err and "rgsd.train.trainer WARNING" in err
    assert ("rgsd.train.trainer DEBUG" in err) is verbose
