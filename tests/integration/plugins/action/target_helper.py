"""Test-only action: run a target's helper script (targets/*/files/*.py) inside Ansible's worker process.

Takes the same ``argv`` as the ``ansible.builtin.command`` task it replaces, ``[python, SCRIPT, args...]``,
calls ``main(args)`` of SCRIPT (loaded once per process, see helper_loader.py) and returns what the command
would have returned (``rc``, ``stdout``, ``stderr``, ``*_lines``), so that ``x.stdout | from_json`` reads the
very same JSON. It saves a Python start and the imports of cryptography (and boto3) per call; the helpers
themselves are unchanged and share no code with the collection. In check mode it skips, as the command does.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback

from ansible.plugins.action import ActionBase

_PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PLUGINS not in sys.path:
    sys.path.insert(0, _PLUGINS)

from helper_loader import HelperError, load_helper


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        argv = self._task.args.get("argv")
        if not isinstance(argv, list) or len(argv) < 2:
            result.update(failed=True, msg=f"target_helper: argv must be [python, SCRIPT, ...]; got {argv!r}")
            return result
        argv = [str(item) for item in argv]
        try:
            helper = load_helper(argv[1])
        except HelperError as error:
            result.update(failed=True, msg=f"target_helper: {error}")
            return result
        if self._task.check_mode:
            # What ansible.builtin.command does in check mode (neither creates nor removes given).
            result.update(skipped=True, changed=False, msg="Command would have run if not in check mode", rc=0)
            return result
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = helper.main(argv[2:])
            except SystemExit as stop:  # argparse's usage errors, sys.exit(...) in the helper
                rc = stop.code if isinstance(stop.code, int) or stop.code is None else 1
                if not isinstance(stop.code, int) and stop.code is not None:
                    print(stop.code, file=sys.stderr)  # what Python prints for sys.exit("message")
            except Exception:  # the command's traceback and rc 1, as a separate Python would give
                traceback.print_exc()
                rc = 1
        rc = rc or 0
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
