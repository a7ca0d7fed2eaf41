# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of the fleet module: progress lines on the controller during long runs.

The module runs as usual; while it runs, this plugin reads the progress file the module rewrites every
``progress_interval`` seconds and prints a line when it changed, for example::

    localhost: fleet apply 120/500 devices (24%), 9.9/s, 731 API calls, 3 throttles, 0 failed, 14.1 s

The file is on the controller only when the connection is local (``hosts: localhost``,
``delegate_to: localhost``), the usual case for an AWS module; with another connection, or with
``async``, the module runs without progress lines.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

display = Display()

LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")


def progress_line(state: dict) -> str:
    """``apply 120/500 devices (24%), 9.9/s, 731 API calls, 3 throttles, 0 failed, 14.1 s``."""
    total = state.get("total") or 0
    done = state.get("done") or 0
    share = f" ({100 * done // total}%)" if total else ""
    noun = "certificate listings" if state.get("phase") == "read" else "devices"
    return ", ".join(
        [
            f"{state.get('phase', '?')} {done}/{total} {noun}{share}",
            f"{state.get('rate', 0)}/s",
            f"{state.get('api_calls', 0)} API calls",
            f"{state.get('throttles', 0)} throttles",
            f"{state.get('failed', 0)} failed",
            f"{state.get('elapsed', 0)} s",
        ]
    )


def read_progress(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None  # not written yet (or replaced right now): the next poll sees it
    return state if isinstance(state, dict) else None


def progress_interval(value: object) -> float | None:
    """The option as a number of seconds; None when it is not one (the module then names the error)."""
    if value is None:
        return 10.0
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True

    def _is_local(self) -> bool:
        return getattr(self._connection, "transport", None) in LOCAL_CONNECTIONS

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no longer has any effect
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        module_args = dict(self._task.args)
        interval = progress_interval(module_args.get("progress_interval"))
        if self._task.async_val or not interval or interval <= 0 or not self._is_local():
            result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        else:
            result = merge_hash(result, self._execute_with_progress(module_args, interval, task_vars or {}))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        # The counts on the console without -v: a pipeline log shows what the run did (or would do) at a glance.
        if isinstance(result.get("summary_line"), str):
            display.display(
                f"{(task_vars or {}).get('inventory_hostname', 'localhost')}: fleet {result['summary_line']}"
            )
        return result

    def _execute_with_progress(self, module_args: dict, interval: float, task_vars: dict) -> dict:
        """Run the module in a thread; meanwhile print its progress file whenever it changed."""
        scratch = None
        if not module_args.get("progress_path"):
            scratch = tempfile.mkdtemp(prefix="iotfleet-fleet-progress-")
            module_args["progress_path"] = os.path.join(scratch, "progress.json")
        path = os.path.expanduser(str(module_args["progress_path"]))
        host = task_vars.get("inventory_hostname", "localhost")
        outcome: dict = {}

        def execute() -> None:
            try:
                outcome["result"] = self._execute_module(module_args=module_args, task_vars=task_vars)
            except BaseException as error:  # re-raised in the task's own thread below
                outcome["error"] = error

        worker = threading.Thread(target=execute, name="fleet-module", daemon=True)
        worker.start()
        shown = None
        try:
            while True:
                worker.join(interval)
                if not worker.is_alive():
                    break
                state = read_progress(path)
                if state and state.get("phase") != "done":
                    line = progress_line(state)
                    if line != shown:
                        display.display(f"{host}: fleet {line}")
                        shown = line
        finally:
            if scratch:
                worker.join()
                shutil.rmtree(scratch, ignore_errors=True)
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        if scratch:
            # The scratch file is gone: do not echo its path back as if the user had asked for it.
            result.get("invocation", {}).get("module_args", {}).pop("progress_path", None)
        return result
