"""The command line shows the library's log warnings on stderr, shaped like its errors."""

from __future__ import annotations

import logging

import pytest

from labeller.cli.main import _log_to_stderr


@pytest.fixture(autouse=True)
def restore_logger():
    log = logging.getLogger("labeller")
    saved = (log.handlers[:], log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


def test_library_warnings_reach_stderr_with_the_command_prefix(capsys):
    _log_to_stderr("track", debug=False)
    logging.getLogger("labeller.track.fusion").warning("cloud.ply not written")
    logging.getLogger("labeller.track.fusion").debug("hidden without --debug")
    err = capsys.readouterr().err
    assert err == "labeller track: warning: cloud.ply not written\n"


def test_debug_shows_debug_messages(capsys):
    _log_to_stderr("propagate", debug=True)
    logging.getLogger("labeller.propagate.driver").debug("resumed at frame 3")
    assert capsys.readouterr().err == "labeller propagate: debug: resumed at frame 3\n"
