"""Shared helpers of the integration tests (paths, endpoint reset)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reset_endpoint(url: str) -> None:
    """Forget all state, recorded calls and traffic settings (faults), so each test starts from an empty account."""
    for path, method in (("/moto-api/reset", "POST"), ("/_local/calls", "DELETE"), ("/_local/traffic", "DELETE")):
        request = urllib.request.Request(f"{url}{path}", method=method)
        urllib.request.urlopen(request, timeout=10).close()


@contextlib.contextmanager
def endpoint_without_managed_policies(extra_args: list[str], log_path: str) -> Iterator[str]:
    """An endpoint of a test module's own, for tests that make no IAM call: without AWS's ~1600 managed IAM
    policies, which the endpoint otherwise parses again at every /moto-api/reset (over a second of its CPU).
    Only the child gets the setting: the session's endpoint, started later in this process, must have them."""
    import launcher  # tests/local_iot, put on sys.path by conftest.py

    name = "MOTO_IAM_LOAD_MANAGED_POLICIES"
    with contextlib.ExitStack() as stack:
        previous = os.environ.get(name)
        os.environ[name] = "false"
        try:
            url = stack.enter_context(launcher.running_endpoint(extra_args=extra_args, log_path=log_path))
        finally:
            if previous is None:
                del os.environ[name]
            else:
                os.environ[name] = previous
        yield url


def control(url: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    """A call to the endpoint's control paths (/_local/traffic, /_local/calls); the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}{path}", data=data, method=method)
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text.strip() else {}


def iot_client(url: str, service: str = "iot"):
    """A plain boto3 client of the endpoint, independent of the collection's code."""
    import boto3

    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def ansible_env(endpoint: str, collections_path: str, tmp_path: str) -> dict[str, str]:
    """Ansible and AWS settings for a run against the local endpoint, isolated from the user's config."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_HOME=os.path.join(tmp_path, "ansible_home"),
        ANSIBLE_LOCAL_TEMP=os.path.join(tmp_path, "ansible_tmp"),
        LOCAL_IOT_ENDPOINT=endpoint,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        # Modules run as on a controller without the device SDK (a test dependency): see the stub's docstring.
        PYTHONPATH=os.pathsep.join(
            [os.path.join(REPO, "tests", "integration", "without_device_sdk")]
            + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        ),
    )
    return env


def run_playbook(
    playbook: str,
    endpoint: str,
    collections_path: str,
    tmp_path: str,
    extra_vars: dict[str, object] | None = None,
    extra_env: dict[str, str] | None = None,
    check: bool = False,
    inventory: str | None = None,
) -> subprocess.CompletedProcess:
    """ansible-playbook on localhost with --diff (and --check), extra vars passed as JSON; an extra inventory."""
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    args = [ansible_playbook if os.path.exists(ansible_playbook) else "ansible-playbook"]
    args += ["-i", "localhost,", "-c", "local", playbook, "--diff"]
    if inventory:
        args += ["-i", inventory]
    if check:
        args.append("--check")
    if extra_vars:
        args += ["-e", json.dumps(extra_vars)]
    env = ansible_env(endpoint, collections_path, tmp_path)
    env.update(extra_env or {})
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counts of localhost (ok, changed, failed, ...)."""
    match = re.search(r"^localhost\s+:\s+(.*)$", output, re.MULTILINE)
    if not match:
        raise AssertionError(f"no PLAY RECAP in output:\n{output[-3000:]}")
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def assert_nothing_done(url: str, area: Path) -> None:
    """A refused run left no trace: no file under ``area``, no AWS IoT call, no IAM role, no IoT policy."""
    assert sorted(str(p.relative_to(area)) for p in area.rglob("*")) == []
    assert control(url, "/_local/calls")["calls"] == []
    assert iot_client(url, "iam").list_roles()["Roles"] == []
    assert iot_client(url).list_policies()["policies"] == []
