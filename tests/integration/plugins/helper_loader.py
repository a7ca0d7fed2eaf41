"""Load the targets' helper scripts (tests/integration/targets/*/files/*.py) once per process.

Shared by the test-only target_helper action and the preload callback beside it: the callback loads the
helpers (and so cryptography and boto3) in ansible-playbook's main process, and the worker processes forked
for each task inherit them instead of starting Python and importing those libraries again for every call.
Only a script in a target's files/ directory with a ``main(argv) -> int`` function qualifies.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import sys
from types import ModuleType

TARGETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "targets")


class HelperError(Exception):
    """The path is not a helper script the action may run."""


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, TARGETS_DIR)
    return "target_helper_" + re.sub(r"\W", "_", relative[: -len(".py")])


def load_helper(path: str) -> ModuleType:
    """The helper module at ``path`` (a target's files/NAME.py), imported from its file the first time only."""
    real = os.path.realpath(path)
    parts = os.path.relpath(real, os.path.realpath(TARGETS_DIR)).split(os.sep)
    if len(parts) != 3 or parts[1] != "files" or not parts[2].endswith(".py") or not os.path.isfile(real):
        raise HelperError(f"{path} is not a helper script in {TARGETS_DIR}/TARGET/files/")
    name = _module_name(os.path.join(TARGETS_DIR, *parts))
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, real)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    if not callable(getattr(module, "main", None)):
        raise HelperError(f"{path} has no main(argv) function")
    return module


def preload_helpers() -> list[str]:
    """Load the helper scripts of every target; the paths of those loaded.

    Only a script with ``def main(`` and a ``__main__`` guard is loaded (one without the guard would run at
    import), and one that fails to import is left out: the action then reports its error when a task calls it,
    instead of this preload breaking every target's playbook run.
    """
    loaded = []
    for path in sorted(glob.glob(os.path.join(TARGETS_DIR, "*", "files", "*.py"))):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if "\ndef main(" not in text or 'if __name__ == "__main__":' not in text:
            continue
        try:
            load_helper(path)
        except (Exception, SystemExit):  # reported by the action at use, see above
            continue
        loaded.append(path)
    return loaded
