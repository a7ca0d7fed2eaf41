"""Test-only callback: import iot_probe.py, boto3 and an IoT client in ansible-playbook's main process,
and the targets' helper scripts (targets/*/files/*.py, so cryptography too) for the target_helper action.

It reports nothing. Being loaded at start-up in the main process, it makes the workers forked for each
task inherit the imports and the client, so the iot_probe and target_helper actions cost milliseconds
instead of a new Python, boto3 or cryptography import and client per call.
"""

from __future__ import annotations

import os
import sys

from ansible.plugins.callback import CallbackBase

_PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PLUGINS not in sys.path:
    sys.path.insert(0, _PLUGINS)

from helper_loader import preload_helpers
from probe_loader import load_probe

if os.environ.get("LOCAL_IOT_ENDPOINT"):
    load_probe().client()
preload_helpers()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "iot_probe_preload"
    CALLBACK_NEEDS_ENABLED = False
