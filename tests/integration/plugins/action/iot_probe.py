"""Test-only action: run tests/integration/iot_probe.py inside Ansible's worker process.

Takes the same ``argv`` (or ``cmd``) as the ``ansible.builtin.command`` task it replaces, whose first
two items are a Python interpreter and iot_probe.py, and returns what that command would have
returned (``rc``, ``stdout``, ``stderr``, ``*_lines``), so that ``x.stdout | from_json`` reads the very
same JSON. It saves a Python start, a boto3 import and a client per call; the reading of the endpoint's
state is still iot_probe.py's own boto3 client, which shares no code with the collection.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
import traceback

from ansible.plugins.action import ActionBase

_PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PLUGINS not in sys.path:
    sys.path.insert(0, _PLUGINS)

from probe_loader import PROBE_PATH, load_probe


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        argv = args.get("argv")
        if argv is None and args.get("cmd") is not None:
            argv = shlex.split(args["cmd"])
        if not isinstance(argv, list) or len(argv) < 2 or os.path.basename(str(argv[1])) != "iot_probe.py":
            result.update(failed=True, msg=f"iot_probe: argv must be [python, {PROBE_PATH}, ...]; got {argv!r}")
            return result
        argv = [str(item) for item in argv]
        if self._task.check_mode:
            # What ansible.builtin.command does in check mode (neither creates nor removes given).
            result.update(skipped=True, changed=False, msg="Command would have run if not in check mode", rc=0)
            return result
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = load_probe().main(argv[2:])
            except SystemExit as stop:
                rc = stop.code if isinstance(stop.code, int) else 1
            except Exception:  # the command's traceback and rc 1, as a separate Python would give
                traceback.print_exc()
                rc = 1
        stdout, stderr = out.getvalue().rstrip("\n"), err.getvalue().rstrip("\n")
        result.update(
            changed=True,
            cmd=argv,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
            stdout_lines=stdout.splitlines(),
            stderr_lines=stderr.splitlines(),
        )
        if rc != 0:
            result.update(failed=True, msg="non-zero return code")
        return result
