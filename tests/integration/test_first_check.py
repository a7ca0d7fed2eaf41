"""The first ``--check --diff`` of a new fleet on an empty account (issue 10, item 2).

A GitOps pull-request job plans before anything exists: the roles' own policy, thing type and groups are only
predicted by their tasks, so the engine must plan against them instead of failing, make no mutating call and
write nothing but the plan. Then the apply does what the plan said.
"""

from __future__ import annotations

import json
import os

import pytest
from harness import REPO, control, iot_client, recap, reset_endpoint, run_playbook

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Search")


def mutating_calls(url: str) -> list[str]:
    return [c for c in control(url, "/_local/calls")["calls"] if not c.startswith(READ_ONLY_PREFIXES)]


def assert_empty_account(url: str) -> None:
    iot = iot_client(url)
    assert iot.list_things()["things"] == []
    assert iot.list_policies()["policies"] == []
    assert iot.list_thing_types()["thingTypes"] == []
    assert iot.list_thing_groups()["thingGroups"] == []
    assert iot.list_certificates()["certificates"] == []
    assert iot_client(url, "iam").list_roles()["Roles"] == []


def first_check(url: str, collections_path: str, tmp_path, playbook: str, variables: dict):
    reset_endpoint(url)
    control(url, "/_local/calls", "DELETE")
    result = run_playbook(
        os.path.join(REPO, "playbooks", playbook), url, collections_path, str(tmp_path), variables, check=True
    )
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    assert mutating_calls(url) == []
    assert_empty_account(url)
    return result


BULK = {
    "iot_region": "us-east-1",
    "bulk_fleet_group": "first-fleet",
    "bulk_thing_type": "first-sensor",
    "bulk_thing_groups": ["first-site"],
    "bulk_attributes": {"model": "m1"},
    "bulk_policy_name": "first-policy",
    "bulk_policy_document": POLICY,
    "bulk_devices": [{"name": "first-001", "thing_groups": ["first-line"]}, {"name": "first-002"}],
}


def test_bulk_api_first_check_plans_every_device_then_the_apply_matches(local_iot_endpoint, collections_path, tmp_path):
    keys = tmp_path / "keys"
    plan_path = tmp_path / "fresh-checkout" / "plans" / "plan.json"  # a directory the checkout lacks
    variables = {
        **BULK,
        "iot_endpoint_url": local_iot_endpoint,
        "bulk_output_dir": str(keys),
        "bulk_plan_path": str(plan_path),
    }
    result = first_check(local_iot_endpoint, collections_path, tmp_path, "bulk.yml", variables)
    plan = json.loads(plan_path.read_text())
    assert plan["counts"]["create"] == 2 and plan["counts"]["failed"] == 0
    assert plan["made_by_earlier_tasks"] == {"policies": ["first-policy"], "thing_types": ["first-sensor"]}
    assert not keys.exists()  # check mode writes no key and makes no key directory
    # One line of counts on the console, and one diff per device.
    assert "fleet first-fleet: check mode, nothing changed: 2 create, 0 update, 0 prune, 0 unchanged" in result.stdout
    assert "--- before: device first-001" in result.stdout
    assert "+++ after: device first-001 (create)" in result.stdout

    applied = run_playbook(
        os.path.join(REPO, "playbooks", "bulk.yml"), local_iot_endpoint, collections_path, str(tmp_path), variables
    )
    assert applied.returncode == 0, applied.stdout[-12000:]
    assert "fleet first-fleet: 2 create, 0 update, 0 prune, 0 unchanged" in applied.stdout
    iot = iot_client(local_iot_endpoint)
    assert iot.describe_thing(thingName="first-001")["thingTypeName"] == "first-sensor"
    assert oct(os.stat(keys).st_mode & 0o777) == "0o700"
    again = run_playbook(
        os.path.join(REPO, "playbooks", "bulk.yml"), local_iot_endpoint, collections_path, str(tmp_path), variables
    )
    assert recap(again.stdout)["changed"] == 0, again.stdout[-8000:]


def test_bulk_registration_task_first_check_plans_without_a_role(local_iot_endpoint, collections_path, tmp_path):
    variables = {
        **BULK,
        "iot_endpoint_url": local_iot_endpoint,
        "bulk_engine": "registration_task",
        "bulk_bucket": "first-input",
        "bulk_output_dir": str(tmp_path / "keys"),
    }
    variables.pop("bulk_thing_type")  # a registration task's template names the type; keep the plan simple
    result = first_check(local_iot_endpoint, collections_path, tmp_path, "bulk.yml", variables)
    assert recap(result.stdout)["failed"] == 0


@pytest.mark.parametrize("method", ["modules", "template"])
def test_single_thing_first_check_on_an_empty_account(method, local_iot_endpoint, collections_path, tmp_path):
    variables = {
        "iot_endpoint_url": local_iot_endpoint,
        "iot_region": "us-east-1",
        "single_thing_name": "first-thing",
        "single_thing_method": method,
        "single_thing_type": "first-type",
        "single_thing_groups": ["first-group"],
        "single_thing_attributes": {"model": "m1"},
        "single_thing_policy_name": "first-thing-policy",
        "single_thing_policy_document": POLICY,
        "single_thing_output_dir": str(tmp_path / "device"),
        "single_thing_controller_dir": str(tmp_path / "controller"),
    }
    result = first_check(local_iot_endpoint, collections_path, tmp_path, "single_thing.yml", variables)
    assert recap(result.stdout)["failed"] == 0


@pytest.mark.parametrize(
    "playbook, variables, field",
    [
        (
            "bulk.yml",
            {**BULK, "bulk_output_dir": "/x/ansible_collections/iotfleet/provisioning/keys"},
            "bulk_output_dir",
        ),
        ("bulk.yml", BULK, "bulk_output_dir"),
        (
            "single_thing.yml",
            {
                "single_thing_name": "first-thing",
                "single_thing_policy_name": "p",
                "single_thing_output_dir": "/tmp/device",
                "single_thing_controller_dir": "/opt/ansible_collections/iotfleet/provisioning/credentials",
            },
            "single_thing_controller_dir",
        ),
    ],
)
def test_keys_never_default_into_or_go_inside_a_collection(
    playbook, variables, field, local_iot_endpoint, collections_path, tmp_path
):
    reset_endpoint(local_iot_endpoint)
    control(local_iot_endpoint, "/_local/calls", "DELETE")
    result = run_playbook(
        os.path.join(REPO, "playbooks", playbook),
        local_iot_endpoint,
        collections_path,
        str(tmp_path),
        {**variables, "iot_endpoint_url": local_iot_endpoint, "iot_region": "us-east-1"},
    )
    assert result.returncode != 0
    assert field in result.stdout
    assert control(local_iot_endpoint, "/_local/calls")["calls"] == []
