"""`make test-aws` (scripts/test_aws.py) without AWS: its switch, its dry listing, its skips, its relay and its
sweep, with a local endpoint standing in for AWS. It has never run against a real account from here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import boto3
import botocore.session
import pytest
from harness import REPO, iot_client, reset_endpoint

sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from aws_relay import iot_operation
from aws_sweep import Sweep

RUNNER = os.path.join(REPO, "scripts", "test_aws.py")


def _runner(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOTFLEET_"))}
    base.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    base.update(env)
    return subprocess.run(
        [sys.executable, RUNNER, *args], env=base, capture_output=True, text=True, timeout=300, check=False
    )


def test_refuses_without_the_switch_after_the_dry_listing() -> None:
    """No switch (or a switch other than 1): the listing, then a refusal naming the switch; no region: refused."""
    for switch in ({}, {"IOTFLEET_AWS_TESTS": "yes"}):
        result = _runner(["--prefix", "itlisting"], {"AWS_REGION": "eu-west-1", **switch})
        assert result.returncode == 2, result.stdout + result.stderr
        assert "set IOTFLEET_AWS_TESTS=1" in result.stderr
        out = result.stdout
        assert "run prefix 'itlisting', region eu-west-1" in out
        assert "costs money at rest" in out
        # The skips and their reasons, found in the targets themselves.
        assert re.search(r"^  certificate +skipped: injects faults .*/_local/traffic", out, re.M)
        assert re.search(r"^  thing_registration_task +skipped: injects faults", out, re.M)
        assert re.search(r"^  ca_certificate +skipped: simulates a device's first connection", out, re.M)
        assert re.search(r"^  provisioning_role +skipped: asserts the role ARN .*123456789012", out, re.M)
        # What runs, and what it makes.
        assert re.search(r"^  thing +makes .*things.*, named itlistingNN-", out, re.M)
        assert re.search(r"^  policy_attachment +makes .*IoT policies", out, re.M)
        assert re.search(r"^  csr +makes nothing in AWS", out, re.M)
    no_region = _runner(["--prefix", "itlisting"], {"IOTFLEET_AWS_TESTS": "1"})
    assert no_region.returncode == 2 and "set AWS_REGION" in no_region.stderr
    dry = _runner(["--dry-run", "--targets", "thing"], {})
    assert dry.returncode == 0 and "Will run:" in dry.stdout and "policy_attachment" not in dry.stdout
    assert _runner(["--prefix", "ab"], {}).returncode == 2  # a short prefix could match others' names


def test_relay_knows_every_iot_operation_by_its_request() -> None:
    """/_local/calls through the relay names operations by botocore's model: each of the 272 maps back to itself."""
    model = botocore.session.get_session().get_service_model("iot")
    wrong = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path, query = http["requestUri"].split("?", 1) if "?" in http["requestUri"] else (http["requestUri"], "")
        literal_query = "&".join(item for item in query.split("&") if "=" in item and "{" not in item)
        got = iot_operation(http["method"], re.sub(r"\{[^}]+\}", "x-1", path), literal_query)
        if got != name:
            wrong.append((name, got))
    assert len(model.operation_names) > 250 and wrong == []


TARGET_LEAVES_AND_FAILS = """
- name: A thing and a policy, named with the run prefix
  iotfleet.provisioning.thing:
    name: "{{ resource_prefix }}-left"
- name: A policy
  iotfleet.provisioning.policy:
    name: "{{ resource_prefix }}-left"
    document: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "iot:Connect", Resource: "*"}]}
- name: The target fails before its own clean-up
  ansible.builtin.fail:
    msg: failing on purpose
"""

TARGET_LOCAL_ONLY = """
- name: Needs the local endpoint's faults
  ansible.builtin.uri:
    url: "{{ local_iot_endpoint }}/_local/traffic"
"""


def test_a_run_through_the_relay_sweeps_its_prefix_even_after_a_failure(local_iot_endpoint: str, tmp_path) -> None:
    """The runner with the local endpoint standing in for AWS (eu-west-1): thing_info, unchanged, passes through
    the relay (its no-mutating-call checks included); a target that fails leaves a thing and a policy, which the
    sweep removes; a local-only target is skipped; a neighbour's resources stay."""
    reset_endpoint(local_iot_endpoint)
    targets = tmp_path / "targets"
    for name, text in (("leaves_and_fails", TARGET_LEAVES_AND_FAILS), ("local_only", TARGET_LOCAL_ONLY)):
        (targets / name / "tasks").mkdir(parents=True)
        (targets / name / "tasks" / "main.yml").write_text(textwrap.dedent(text))
    (targets / "thing_info").symlink_to(os.path.join(REPO, "tests", "integration", "targets", "thing_info"))
    iot = boto3.client(
        "iot",
        endpoint_url=local_iot_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    iot.create_thing(thingName="itneighb-keep")
    result = _runner(
        [
            "--prefix",
            "itrun01",
            "--upstream",
            local_iot_endpoint,
            "--targets-dir",
            str(targets),
            "--targets",
            "leaves_and_fails,local_only,thing_info",
            "--work",
            str(tmp_path / "work"),
        ],
        {"IOTFLEET_AWS_TESTS": "1", "AWS_REGION": "eu-west-1"},
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert re.search(r"^  thing_info +passed in \d+ s", out, re.M), out[-8000:]
    assert re.search(r"^  leaves_and_fails +FAILED", out, re.M) and "failing on purpose" in out
    assert re.search(r"^  local_only +skipped: injects faults", out, re.M)
    report = json.loads((tmp_path / "work" / "itrun01" / "sweep.json").read_text())
    # The failed target's thing and policy, and what thing_info leaves for the sweep (it has no clean-up step).
    assert "itrun0100-left" in report["thing"]["removed"] and len(report["thing"]["removed"]) > 1
    assert all(name.startswith(("itrun0100-", "itrun0102-")) for name in report["thing"]["removed"])
    assert report["policy"]["removed"] == ["itrun0100-left"]
    assert not any(outcome.get("failed") for outcome in report.values())
    # The account (the stand-in's eu-west-1) holds the neighbour's thing only; us-east-1 saw nothing.
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["itneighb-keep"]
    assert iot.list_policies()["policies"] == []
    assert iot_client(local_iot_endpoint).list_things()["things"] == []


def test_sweep_removes_the_prefix_and_nothing_else(local_iot_endpoint: str) -> None:
    """Things, their certificates, policies (with versions and targets), groups (children first), templates,
    thing types and IAM roles named with the prefix go; a certificate also on a neighbour's thing stays."""
    reset_endpoint(local_iot_endpoint)
    iot, iam = iot_client(local_iot_endpoint), iot_client(local_iot_endpoint, "iam")
    doc = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    )
    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "REGISTRY"})  # dynamic groups
    for prefix in ("itsweep1", "itother1"):
        iot.create_thing_type(thingTypeName=f"{prefix}-type")
        iot.create_thing(thingName=f"{prefix}-a", thingTypeName=f"{prefix}-type")
        iot.create_thing_group(thingGroupName=f"{prefix}-parent")
        iot.create_thing_group(thingGroupName=f"{prefix}-child", parentGroupName=f"{prefix}-parent")
        iot.create_policy(policyName=f"{prefix}-pol", policyDocument=doc)
        iot.create_policy_version(policyName=f"{prefix}-pol", policyDocument=doc, setAsDefault=True)
        cert = iot.create_keys_and_certificate(setAsActive=True)
        iot.attach_thing_principal(thingName=f"{prefix}-a", principal=cert["certificateArn"])
        iot.attach_policy(policyName=f"{prefix}-pol", target=cert["certificateArn"])
        iam.create_role(RoleName=f"{prefix}-role", AssumeRolePolicyDocument=doc)
        iam.attach_role_policy(RoleName=f"{prefix}-role", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
        iot.create_billing_group(billingGroupName=f"{prefix}-bill")
        iot.create_dynamic_thing_group(thingGroupName=f"{prefix}-dyn", queryString="attributes.model:x")
    shared = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_thing(thingName="itsweep1-shared")
    for thing in ("itsweep1-shared", "itother1-a"):
        iot.attach_thing_principal(thingName=thing, principal=shared["certificateArn"])

    report = Sweep("itsweep1", iot, iam, thing_type_wait=20, log=lambda line: None).run()

    assert sorted(report["thing"]["removed"]) == ["itsweep1-a", "itsweep1-shared"]
    removed_groups = report["thing group"]["removed"]
    assert sorted(removed_groups) == ["itsweep1-child", "itsweep1-dyn", "itsweep1-parent"]
    assert removed_groups.index("itsweep1-child") < removed_groups.index("itsweep1-parent")
    assert report["billing group"]["removed"] == ["itsweep1-bill"]
    assert report["policy"]["removed"] == ["itsweep1-pol"]
    assert report["thing type"]["removed"] == ["itsweep1-type"]
    assert report["IAM role"]["removed"] == ["itsweep1-role"]
    assert len(report["certificate"]["removed"]) == 1
    assert report["certificate"]["kept"] == [f"{shared['certificateId']} (also attached to itother1-a)"]
    assert not any(outcome.get("failed") for outcome in report.values())
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["itother1-a"]
    assert sorted(g["groupName"] for g in iot.list_thing_groups()["thingGroups"]) == [
        "itother1-child",
        "itother1-dyn",
        "itother1-parent",
    ]
    assert [g["groupName"] for g in iot.list_billing_groups()["billingGroups"]] == ["itother1-bill"]
    assert [p["policyName"] for p in iot.list_policies()["policies"]] == ["itother1-pol"]
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["itother1-role"]
    assert [t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]] == ["itother1-type"]
    remaining = {c["certificateId"]: c["status"] for c in iot.list_certificates()["certificates"]}
    assert len(remaining) == 2 and remaining[shared["certificateId"]] == "ACTIVE"
    assert set(iot.list_principal_things(principal=shared["certificateArn"])["things"]) == {"itother1-a"}
    with pytest.raises(ValueError):
        Sweep("it", iot, iam)
