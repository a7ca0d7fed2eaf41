"""AWS managed IAM policies built once per endpoint (iam_managed.py): each reset still starts from moto's own
policies, with nothing of the previous lifetime (attachments) carried over."""

from __future__ import annotations

import json
import os
import sys
from typing import Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import launcher
from endpoint_testing import LOG_DIR, client, reset

REGISTRATION = "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    os.makedirs(LOG_DIR, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        with launcher.running_endpoint(log_path=os.path.join(LOG_DIR, "local_iot_iam_managed.log")) as url:
            yield url


def _moto_document(name: str) -> dict:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)[name]["Document"]


def test_managed_policies_are_moto_s_own_after_every_reset(endpoint: str) -> None:
    iam = client(endpoint, "iam")
    for _round in range(2):
        reset(endpoint)
        policy = iam.get_policy(PolicyArn=REGISTRATION)["Policy"]
        version = iam.get_policy_version(PolicyArn=REGISTRATION, VersionId=policy["DefaultVersionId"])
        assert version["PolicyVersion"]["Document"] == _moto_document("AWSIoTThingsRegistration")
        assert policy["AttachmentCount"] == 0
        listed = iam.list_policies(Scope="AWS", MaxItems=1000)
        assert listed["Policies"], "the AWS managed policies are listed"


def test_an_attachment_does_not_outlive_the_reset(endpoint: str) -> None:
    iam = client(endpoint, "iam")
    reset(endpoint)
    iam.create_role(RoleName="provisioning", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName="provisioning", PolicyArn=REGISTRATION)
    assert iam.get_policy(PolicyArn=REGISTRATION)["Policy"]["AttachmentCount"] == 1
    assert [r["RoleName"] for r in iam.list_entities_for_policy(PolicyArn=REGISTRATION)["PolicyRoles"]] == [
        "provisioning"
    ]
    reset(endpoint)
    assert iam.get_policy(PolicyArn=REGISTRATION)["Policy"]["AttachmentCount"] == 0
    assert iam.list_entities_for_policy(PolicyArn=REGISTRATION)["PolicyRoles"] == []
    assert iam.list_roles()["Roles"] == []
