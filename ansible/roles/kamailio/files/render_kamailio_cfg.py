"""Render Kamailio's configuration on a sipio host the way ``sipio up`` does.

Runs with the sipio venv's Python: the same renderer (``kemi/cfg.py``) and the same settings
file as every sipio process on the host, so production and the local stack cannot drift.
Usage: ``render_kamailio_cfg.py SETTINGS_JSON KAMAILIO_CFG``. Prints what changed, or
``unchanged``:

- ``cfg``: kamailio.cfg itself;
- ``settings``: a setting the KEMI workers read when Kamailio starts (a copy of what the running
  configuration was rendered from is kept beside it, as ``KAMAILIO_CFG.settings.json``);
- ``dispatcher``: dispatcher.list, i.e. the media nodes, which Kamailio reloads in place.

The uac restore secret that ``render`` draws afresh is carried over from the file already in
place, so rendering the same settings twice changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from control.settings import Settings
from kemi.cfg import render, render_dispatcher

RESTORE_SECRET = re.compile(r'^modparam\("uac", "restore_passwd", "[^"\n]*"\)$', re.MULTILINE)


def keep_restore_secret(new: str, old: str | None) -> str:
    kept = RESTORE_SECRET.search(old or "")
    return RESTORE_SECRET.sub(lambda _: kept.group(0), new) if kept else new


def write(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o640)
    tmp.replace(path)
    return True


def main(settings_path: str, cfg_path: str) -> None:
    settings = Settings.load(settings_path)
    target = Path(cfg_path)
    old = target.read_text() if target.exists() else None
    changed = []
    if write(target, keep_restore_secret(render(settings), old)):
        changed.append("cfg")
    # Everything but the media nodes (those reach Kamailio through dispatcher.list).
    startup = settings.model_dump(mode="json", exclude={"media_nodes"})
    snapshot = target.with_name(target.name + ".settings.json")
    if write(snapshot, json.dumps(startup, indent=2, sort_keys=True) + "\n"):
        changed.append("settings")
    if write(settings.dispatcher_list, render_dispatcher(settings)):
        changed.append("dispatcher")
    print(" ".join(changed) or "unchanged")


if __name__ == "__main__":
    main(*sys.argv[1:3])
