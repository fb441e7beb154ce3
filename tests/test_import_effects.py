"""Nothing happens at import: importing every module of the platform, in a fresh interpreter,
makes no Celery app, reads no settings and changes no environment variable. A command does
these when it runs.

The one module left out is `workers.main`, the `celery` command line's entry
(`celery -A workers.main ...`): importing it is how that command asks for the app, and nothing
in the platform imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["core", "ingest", "graph", "retrieval", "eval", "serving", "api", "workers", "cli"]
COMMAND_ENTRIES = {"workers.main"}

_PROBE = """
import importlib, json, os, pkgutil, sys
import celery._state

environment = dict(os.environ)
apps = len(celery._state._apps)
names = []
for package in sys.argv[1].split(","):
    names.append(package)
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".migrations." not in info.name and info.name not in sys.argv[2].split(","):
            names.append(info.name)
for name in names:
    importlib.import_module(name)
from core.settings import get_settings
variables = set(os.environ) | set(environment)
changed = sorted(k for k in variables if os.environ.get(k) != environment.get(k))
print(json.dumps({
    "modules": len(names),
    "apps": len(celery._state._apps) - apps,
    "settings_read": get_settings.cache_info().currsize,
    "environment_changed": changed,
}))
"""


def test_importing_every_module_makes_no_app_reads_no_settings_sets_no_variable() -> None:
    # Without the variables that code once set at import, so that setting them would show.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "RAGAS_DO_NOT_TRACK")
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(PACKAGES), ",".join(COMMAND_ENTRIES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["modules"] > 100  # every module, not a handful
    assert found == {**found, "apps": 0, "settings_read": 0, "environment_changed": []}
