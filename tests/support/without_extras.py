"""Run this process as an image without the `s3` and `eval` extras would: importing their modules
fails exactly as it does when they are not installed (`ModuleNotFoundError` naming the module).

Imported first by a child process (`python -c "import tests.support.without_extras; ..."`); the
shared test venv has every extra installed, so hiding them is the only way to check here.
"""

from __future__ import annotations

import importlib.abc
import sys

from core.extras import _EXTRA_MODULES

HIDDEN = set().union(*_EXTRA_MODULES.values()) | {"langchain", "langchain_core"}


class _Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, _Hidden())
