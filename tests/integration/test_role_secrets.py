"""No role prints key material: each role run with -vvv --diff, its whole output searched for a private key.

A key in the output ends up in terminal scrollback, CI job logs and every callback plugin's store (the
result JSON with -vvv), so one occurrence is a leak. Each case also checks that the key was really written,
so the test cannot pass because nothing was done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from harness import REPO, ansible_env, reset_endpoint

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
MARKER = "PRIVATE KEY"


def _client(service: str, endpoint: str):
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def _run_verbose(
    playbook: str, endpoint: str, collections_path: str, tmp_path, variables: dict, check: bool = False
) -> subprocess.CompletedProcess:
    """ansible-playbook -vvv --diff (and --check) on localhost: everything a job log would keep."""
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    args = [ansible_playbook if os.path.exists(ansible_playbook) else "ansible-playbook"]
    args += ["-i", "localhost,", "-c", "local", os.path.join(REPO, "playbooks", playbook), "-vvv", "--diff"]
    args += ["--check"] if check else []
    args += ["-e", json.dumps(variables)]
    env = ansible_env(endpoint, collections_path, str(tmp_path))
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-15000:] + result.stderr[-3000:]
    return result


def _assert_no_key_in_output(result: subprocess.CompletedProcess) -> None:
    """Fail naming the task (the nearest TASK line above) of every occurrence, without echoing the key."""
    leaks = []
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        start = text.find(MARKER)
        while start != -1:
            task = text.rfind("TASK [", 0, start)
            leaks.append(f"{stream}: {text[task : text.find(']', task) + 1] if task != -1 else '(before any task)'}")
            start = text.find(MARKER, start + len(MARKER))
    assert not leaks, "key material in the output of:\n" + "\n".join(sorted(set(leaks)))


def _task_outcomes(stdout: str, name: str) -> list[str]:
    """ok/changed/skipping/failed of each run of the tasks whose names start with name (output hidden or not)."""
    outcomes = []
    for section in stdout.split("TASK [")[1:]:
        if section.split(" : ", 1)[-1].startswith(name):
            outcomes += [word for word in ("ok", "changed", "skipping", "fatal") if f"\n{word}: [" in section]
    return outcomes


def _assert_key_file(path) -> None:
    assert MARKER in path.read_text(), f"{path} holds no private key: the run did not do what this test checks"


@pytest.mark.parametrize(
    ("method", "source"), [("modules", "aws_keys"), ("template", "aws_keys"), ("modules", "device_csr")]
)
def test_single_thing_prints_no_key_with_vvv_diff(
    method: str, source: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    device_dir = tmp_path / "device"
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "single_thing_name": f"secret-{method}-{source}".replace("_", "-"),
        "single_thing_method": method,
        "single_thing_certificate_source": source,
        "single_thing_policy_name": "secret-policy",
        "single_thing_policy_document": POLICY,
        "single_thing_output_dir": str(device_dir),
        "single_thing_controller_dir": str(tmp_path / "controller"),
    }
    first = _run_verbose("single_thing.yml", local_iot_endpoint, collections_path, tmp_path, variables)
    _assert_key_file(device_dir / "private.pem.key")
    _assert_no_key_in_output(first)

    if source == "aws_keys":
        # The review run of a device that lost its key: --check --diff would copy the controller's key again.
        (device_dir / "private.pem.key").unlink()
        preview = _run_verbose("single_thing.yml", local_iot_endpoint, collections_path, tmp_path, variables, True)
        assert _task_outcomes(preview.stdout, "Put the AWS-generated private key on the device") == ["changed"]
        _assert_no_key_in_output(preview)


def test_jitp_prints_no_key_with_vvv_diff(local_iot_endpoint: str, collections_path: str, tmp_path) -> None:
    reset_endpoint(local_iot_endpoint)
    devices = tmp_path / "devices"
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "jitp_ca_dir": str(tmp_path / "ca"),
        "jitp_template_name": "secret-jitp",
        "jitp_role_name": "secret-jitp-role",
        "jitp_policy_name": "secret-jitp-policy",
        "jitp_devices": ["sensor-001", "sensor-002"],
        "jitp_output_dir": str(devices),
    }
    result = _run_verbose("jitp.yml", local_iot_endpoint, collections_path, tmp_path, variables)
    _assert_key_file(tmp_path / "ca" / "ca.pem.key")
    _assert_key_file(devices / "sensor-001" / "private.pem.key")
    _assert_no_key_in_output(result)


@pytest.mark.parametrize("engine", ["api", "registration_task"])
def test_bulk_prints_no_key_with_vvv_diff(
    engine: str, local_iot_endpoint: str, collections_path: str, tmp_path
) -> None:
    reset_endpoint(local_iot_endpoint)
    output_dir = tmp_path / "devices"
    devices = [{"name": "secret-dev-0"}, {"name": "secret-dev-1"}]
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "bulk_engine": engine,
        "bulk_devices": devices,
        "bulk_fleet_group": "secret-fleet",
        "bulk_policy_name": "secret-policy",
        "bulk_policy_document": POLICY,
        "bulk_output_dir": str(output_dir),
    }
    if engine == "api":
        # One device with a key AWS makes (returned once, in the API response), one with a local key and CSR.
        devices[0]["certificate"] = "aws_keys"
    else:
        _client("s3", local_iot_endpoint).create_bucket(Bucket="secret-input")
        variables.update(bulk_bucket="secret-input", bulk_poll_interval=1, bulk_wait_timeout=120)
    result = _run_verbose("bulk.yml", local_iot_endpoint, collections_path, tmp_path, variables)
    for device in devices:
        _assert_key_file(output_dir / device["name"] / "private.pem.key")
    _assert_no_key_in_output(result)
