"""Every sipio process masks the secrets it has resolved, whatever logs them: each entry point
below runs in its own Python process, resolves a trunk password from the store, then logs an
error that mentions it through structlog, a stdlib logger, gunicorn's error logger, a logged
traceback and an uncaught exception. Its output shows the mask, never the value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from control.secrets import MASK, open_store
from control.settings import SETTINGS_ENV, Settings

PASSWORD = "Resolved-" + "Carrier-Pw-77"  # never a literal in the source a traceback shows
REF = "kv:trunk:tr_01redact:auth_password"

# How each kind of process starts its logging: the code of its real entry point.
ENTRY_POINTS = {
    "cli": "from control.cli import main\ntry:\n"
    '    main(["status", "--state-dir", STATE], standalone_mode=False)\n'
    "except SystemExit:\n    pass",
    "api worker": "import control.api.wsgi",
    "collector": "import control.cdr.__main__ as entry\n"
    "class Idle:\n    def __init__(self, settings): pass\n    def run(self, stop): pass\n"
    "entry.Collector = Idle\nentry.serve(SETTINGS)",
    "secrets command": "from control.secrets.__main__ import main\n"
    'main(["check", "--state-dir", STATE], standalone_mode=False)',
    # Started by hand (no FreeSWITCH under `sipio up`): it finds the stack's settings itself.
    "esl controller": "import esl.service\nesl.service.run = lambda config: None\n"
    "from control.cli import main\n"
    'main(["esl-controller", "--state-dir", STATE], standalone_mode=False)\n'
    "from control.secrets import default_store\ndefault_store().resolve(sys.argv[2])",
    "kemi (Kamailio)": "import types\nsys.modules['KSR'] = types.ModuleType('KSR')\n"
    "from kemi.routing import Router\nRouter.from_env()",
}

PROBE = """
import logging, sys
import structlog
from control.settings import Settings
STATE = sys.argv[1]
SETTINGS = Settings.load(STATE + "/settings.json")
# gunicorn sets up its own handler before the app is imported
gunicorn = logging.getLogger("gunicorn.error")
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("gunicorn: %(message)s"))
gunicorn.addHandler(handler)
gunicorn.propagate = False
{entry}
from control.secrets import open_store
value = open_store(SETTINGS).resolve(sys.argv[2])
structlog.get_logger("probe").error("carrier refused the trunk", detail="tried " + value)
logging.getLogger("probe.stdlib").error("stdlib: carrier refused %s", value)
gunicorn.error("worker saw %s", value)
try:
    raise RuntimeError("refused " + value)
except RuntimeError:
    structlog.get_logger("probe").exception("outbound auth failed")
raise RuntimeError("uncaught " + value)
"""


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = Settings(state_dir=tmp_path_factory.mktemp("redact"))
    settings.save()
    open_store(settings).put(REF, PASSWORD)
    return settings.state_dir


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_process_logs_the_secrets_it_resolved_masked(state: Path, entry: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPIO_")}
    if entry != "esl controller":
        env[SETTINGS_ENV] = str(state / "settings.json")  # as `sipio up` starts them
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(entry=ENTRY_POINTS[entry]), str(state), REF],
        env=env, capture_output=True, text=True, timeout=60, cwd=state,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 1, output  # the uncaught exception ended it
    for line in ("carrier refused the trunk", "stdlib: carrier refused", "gunicorn: worker saw",
                 "outbound auth failed", "uncaught exception", "RuntimeError"):  # fmt: skip
        assert line in output, f"{entry}: {line!r} missing from\n{output}"
    assert PASSWORD not in output, output
    assert output.count(MASK) >= 5 and f"uncaught {MASK}" in output, output
