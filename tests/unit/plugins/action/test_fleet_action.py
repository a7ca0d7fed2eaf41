"""The fleet action plugin: progress lines on the controller while the module runs."""

from __future__ import annotations

import json
import os
import time

import pytest

from ansible_collections.iotfleet.provisioning.plugins.action import fleet as fleet_action


def test_progress_line_apply_and_read():
    state = {
        "phase": "apply",
        "total": 500,
        "done": 120,
        "rate": 9.9,
        "api_calls": 731,
        "throttles": 3,
        "failed": 2,
        "elapsed": 14.1,
    }
    assert fleet_action.progress_line(state) == (
        "apply 120/500 devices (24%), 9.9/s, 731 API calls, 3 throttles, 2 failed, 14.1 s"
    )
    assert fleet_action.progress_line({"phase": "read", "total": 0, "done": 0}).startswith(
        "read 0/0 certificate listings, 0/s"
    )


def test_read_progress_tolerates_missing_and_partial_files(tmp_path):
    path = tmp_path / "progress.json"
    assert fleet_action.read_progress(str(path)) is None
    path.write_text('{"phase": "ap')
    assert fleet_action.read_progress(str(path)) is None
    path.write_text("[1, 2]")
    assert fleet_action.read_progress(str(path)) is None
    path.write_text('{"phase": "apply"}')
    assert fleet_action.read_progress(str(path)) == {"phase": "apply"}


@pytest.mark.parametrize(("value", "expected"), [(None, 10.0), (2, 2.0), ("0.5", 0.5), (True, None), ("x", None)])
def test_progress_interval(value, expected):
    assert fleet_action.progress_interval(value) == expected


class FakeModuleRun:
    """Stands in for _execute_module: writes two progress states, then returns a result."""

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.args = None

    def __call__(self, module_args=None, task_vars=None):
        self.args = dict(module_args)
        path = module_args["progress_path"]
        for done in (3, 7):
            with open(path + ".tmp", "w") as handle:
                json.dump({"phase": "apply", "total": 10, "done": done, "rate": 1.0, "elapsed": done}, handle)
            os.replace(path + ".tmp", path)
            time.sleep(0.3)
        if self.fail:
            raise RuntimeError("connection lost")
        return {"changed": True, "invocation": {"module_args": dict(module_args)}}


def _action(monkeypatch, run):
    action = fleet_action.ActionModule.__new__(fleet_action.ActionModule)
    action._execute_module = run
    lines = []
    monkeypatch.setattr(fleet_action.display, "display", lambda msg, *a, **k: lines.append(msg))
    return action, lines


def test_progress_lines_while_the_module_runs_and_scratch_removed(monkeypatch):
    run = FakeModuleRun()
    action, lines = _action(monkeypatch, run)
    result = action._execute_with_progress({"devices_file": "x"}, 0.05, {"inventory_hostname": "ctl"})
    assert result["changed"] is True
    assert lines[0].startswith("ctl: fleet apply 3/10 devices (30%)")
    assert lines[-1].startswith("ctl: fleet apply 7/10 devices (70%)")
    assert len(lines) == 2  # a line only when the state changed
    scratch = os.path.dirname(run.args["progress_path"])
    assert not os.path.exists(scratch)
    assert "progress_path" not in result["invocation"]["module_args"]


def test_user_progress_path_is_kept_and_echoed(monkeypatch, tmp_path):
    run = FakeModuleRun()
    action, lines = _action(monkeypatch, run)
    path = str(tmp_path / "mine.json")
    result = action._execute_with_progress({"progress_path": path}, 0.05, {})
    with open(path) as handle:
        assert json.load(handle)["done"] == 7
    assert result["invocation"]["module_args"]["progress_path"] == path
    assert lines and lines[0].startswith("localhost: fleet apply 3/10")


def test_module_error_is_raised_in_the_task_thread(monkeypatch):
    action, _lines = _action(monkeypatch, FakeModuleRun(fail=True))
    with pytest.raises(RuntimeError, match="connection lost"):
        action._execute_with_progress({}, 0.05, {})
