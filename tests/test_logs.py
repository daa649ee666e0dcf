"""Where the logs go: containers and process managers collect stdout."""

from __future__ import annotations

import json
import subprocess
import sys


def test_json_logs_are_lines_on_stdout_and_nothing_on_stderr() -> None:
    code = (
        "import logging; from retouch.logs import configure_logging; "
        "configure_logging(level='INFO', json_lines=True); "
        "logging.getLogger('retouch.test').info('hello %s', 'there')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stderr == ""
    line = json.loads(out.stdout)
    assert line["level"] == "INFO" and line["logger"] == "retouch.test"
    assert line["message"] == "hello there"
