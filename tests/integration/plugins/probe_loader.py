"""Load tests/integration/iot_probe.py once per process, under the name ``iot_probe``.

Shared by the test-only action and callback plugins beside it: the callback loads the probe (and so
boto3 and an IoT client) in ansible-playbook's main process, and the worker processes forked for each
task inherit it instead of starting Python and importing boto3 again for every probe call.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

PROBE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "iot_probe.py")


def load_probe() -> ModuleType:
    """The iot_probe module, imported from its file the first time only."""
    module = sys.modules.get("iot_probe")
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location("iot_probe", PROBE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["iot_probe"] = module
    spec.loader.exec_module(module)
    return module
