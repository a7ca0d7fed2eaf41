"""The provisioning role: validation, the enforced trust policy, policies the module does not own."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from ansible_collections.iotfleet.provisioning.plugins.module_utils import iam
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGISTRATION = "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
MUTATING = {
    "create_role",
    "update_assume_role_policy",
    "update_role",
    "attach_role_policy",
    "detach_role_policy",
    "put_role_policy",
    "delete_role_policy",
    "delete_role",
    "remove_role_from_instance_profile",
}
TRUSTS_EVERYONE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}


def expected_trust(account: str = ACCOUNT, arns: str | list[str] = f"arn:aws:iot:eu-west-1:{ACCOUNT}:*") -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "iot.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}, "ArnLike": {"aws:SourceArn": arns}},
            }
        ],
    }


class _Paginator:
    def __init__(self, pages):
        self._pages = pages

    def paginate(self, RoleName):
        return iter(self._pages(RoleName))


class FakeIAM:
    """Just enough of IAM's role APIs; documents are stored as the JSON text sent, returned parsed (like boto3)."""

    def __init__(self, region: str = "eu-west-1"):
        self.meta = SimpleNamespace(partition="aws", region_name=region)
        self.roles: dict[str, dict] = {}
        self.calls: list[str] = []

    def mutating_calls(self) -> list[str]:
        return [c for c in self.calls if c in MUTATING]

    def add_role(self, name, trust, managed=(), inline=None, path="/", description=None):
        self.roles[name] = {
            "RoleName": name,
            "Arn": f"arn:aws:iam::{ACCOUNT}:role{path}{name}",
            "Path": path,
            "AssumeRolePolicyDocument": json.dumps(trust),
            "Description": description,
            "managed": list(managed),
            "inline": {k: json.dumps(v) for k, v in (inline or {}).items()},
        }

    def _role(self, name):
        if name not in self.roles:
            raise ClientError({"Error": {"Code": "NoSuchEntity", "Message": f"Role {name} not found"}}, "GetRole")
        return self.roles[name]

    def get_role(self, RoleName):
        self.calls.append("get_role")
        role = self._role(RoleName)
        out = {k: v for k, v in role.items() if k not in ("managed", "inline") and v is not None}
        out["AssumeRolePolicyDocument"] = json.loads(role["AssumeRolePolicyDocument"])
        return {"Role": out}

    def get_paginator(self, operation):
        self.calls.append(operation)
        if operation == "list_attached_role_policies":
            return _Paginator(
                lambda name: [{"AttachedPolicies": [{"PolicyArn": a} for a in self._role(name)["managed"]]}]
            )
        if operation == "list_role_policies":
            return _Paginator(lambda name: [{"PolicyNames": sorted(self._role(name)["inline"])}])
        if operation == "list_instance_profiles_for_role":
            return _Paginator(lambda name: [{"InstanceProfiles": []}])
        raise AssertionError(operation)

    def get_role_policy(self, RoleName, PolicyName):
        self.calls.append("get_role_policy")
        return {"PolicyDocument": json.loads(self._role(RoleName)["inline"][PolicyName])}

    def create_role(self, RoleName, Path, AssumeRolePolicyDocument, Description=None):
        self.calls.append("create_role")
        self.add_role(RoleName, json.loads(AssumeRolePolicyDocument), path=Path, description=Description)

    def update_assume_role_policy(self, RoleName, PolicyDocument):
        self.calls.append("update_assume_role_policy")
        self._role(RoleName)["AssumeRolePolicyDocument"] = PolicyDocument

    def update_role(self, RoleName, Description):
        self.calls.append("update_role")
        self._role(RoleName)["Description"] = Description

    def attach_role_policy(self, RoleName, PolicyArn):
        self.calls.append("attach_role_policy")
        self._role(RoleName)["managed"].append(PolicyArn)

    def detach_role_policy(self, RoleName, PolicyArn):
        self.calls.append("detach_role_policy")
        self._role(RoleName)["managed"].remove(PolicyArn)

    def put_role_policy(self, RoleName, PolicyName, PolicyDocument):
        self.calls.append("put_role_policy")
        self._role(RoleName)["inline"][PolicyName] = PolicyDocument

    def delete_role_policy(self, RoleName, PolicyName):
        self.calls.append("delete_role_policy")
        del self._role(RoleName)["inline"][PolicyName]

    def delete_role(self, RoleName):
        self.calls.append("delete_role")
        del self.roles[RoleName]


@pytest.fixture
def client():
    return FakeIAM()


def params(**overrides):
    base = {
        "name": "iot-provisioning",
        "path": "/",
        "description": None,
        "s3_bucket": None,
        "s3_key": None,
        "source_account": None,
        "source_regions": None,
        "purge_policies": False,
    }
    base.update(overrides)
    return base


class Caller:
    """STS GetCallerIdentity, counted."""

    def __init__(self, account: str = ACCOUNT):
        self.account = account
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.account


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"name": "nl-dev\n"}, "name"),
        ({"name": "rolé"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": ""}, "name"),
        ({"path": "/fleet/\n"}, "path"),
        ({"path": "/" + "p" * 511 + "/"}, "path"),
        ({"s3_bucket": "fleet-input\n", "s3_key": "k"}, "s3_bucket"),
        ({"s3_bucket": "fleet-input", "s3_key": "batch.jsonl\n"}, "s3_key"),
        ({"description": "caf\u00e9 \u2603"}, "description"),
        ({"source_account": "12345678901"}, "source_account"),
        ({"source_account": "123456789012\n"}, "source_account"),
        ({"source_regions": []}, "source_regions"),
        ({"source_regions": ["eu-west-1\n"]}, "source_regions"),
        ({"source_regions": ["*"]}, "source_regions"),
    ],
)
def test_validate_matches_whole_values(overrides, field):
    with pytest.raises(ValidationError) as raised:
        iam.validate(params(**overrides))
    assert str(raised.value).startswith(f"{field}:")


def test_validate_accepts_aws_names():
    desired = iam.validate(
        params(
            name="iot+prov=1,a.b@c_d-e",
            path="/iot/fleet/",
            description="caf\u00e9\tok",
            source_account=ACCOUNT,
            source_regions=["us-gov-west-1", "eu-west-1", "eu-west-1"],
        )
    )
    assert desired.source_regions == ["eu-west-1", "us-gov-west-1"]


# --------------------------------------------------------------------------- the trust policy


def test_new_role_trusts_only_iot_for_the_callers_account_and_region(client):
    caller = Caller()
    done = iam.ensure_present(client, iam.validate(params()), False, caller)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None
    assert after["trust_policy"] == expected_trust()
    assert json.loads(client.roles["iot-provisioning"]["AssumeRolePolicyDocument"]) == expected_trust()
    assert after["managed_policy_arns"] == [REGISTRATION]
    assert caller.calls == 1


def test_new_role_in_check_mode_predicts_the_trust_policy_and_calls_nothing_mutating(client):
    done = iam.ensure_present(client, iam.validate(params()), True, Caller())
    changed, before, after = done.changed, done.before, done.after
    # The ARN a new role will have, so that a check run can plan the tasks that take it (issue 10).
    assert changed and before is None and after["arn"] == f"arn:aws:iam::{ACCOUNT}:role/iot-provisioning"
    assert after["trust_policy"] == expected_trust()
    assert client.mutating_calls() == [] and client.roles == {}


def test_source_account_option_needs_no_sts_call(client):
    caller = Caller()
    done = iam.ensure_present(client, iam.validate(params(source_account=OTHER_ACCOUNT)), False, caller)
    _changed, _before, after = done.changed, done.before, done.after
    assert after["trust_policy"] == expected_trust(OTHER_ACCOUNT, f"arn:aws:iot:eu-west-1:{OTHER_ACCOUNT}:*")
    assert caller.calls == 0


def test_check_mode_predicts_the_arn_in_the_callers_account_and_path(client):
    caller = Caller()
    desired = iam.validate(params(source_account=OTHER_ACCOUNT, path="/iot/"))
    done = iam.ensure_present(client, desired, True, caller)
    _changed, _before, after = done.changed, done.before, done.after
    # The role is made in the caller's account whatever account AWS IoT acts for.
    assert after["arn"] == f"arn:aws:iam::{ACCOUNT}:role/iot/iot-provisioning"
    assert caller.calls == 1 and client.mutating_calls() == []


def test_several_regions_become_a_list_of_source_arns(client):
    desired = iam.validate(params(source_regions=["us-east-1", "eu-west-1"]))
    done = iam.ensure_present(client, desired, True, Caller())
    _changed, _before, after = done.changed, done.before, done.after
    arns = [f"arn:aws:iot:eu-west-1:{ACCOUNT}:*", f"arn:aws:iot:us-east-1:{ACCOUNT}:*"]
    assert after["trust_policy"] == expected_trust(arns=arns)


def test_an_over_trusting_role_is_converged_and_predicted(client):
    client.add_role("iot-provisioning", TRUSTS_EVERYONE, managed=[REGISTRATION, ADMIN])
    desired = iam.validate(params())
    caller = Caller()

    done = iam.ensure_present(client, desired, True, caller)
    changed, before, predicted = done.changed, done.before, done.after
    assert changed
    assert before["trust_policy"] == TRUSTS_EVERYONE
    assert predicted["trust_policy"] == expected_trust()
    assert client.mutating_calls() == []

    done = iam.ensure_present(client, desired, False, caller)
    changed, _before, after = done.changed, done.before, done.after
    assert changed
    assert client.mutating_calls() == ["update_assume_role_policy"]
    assert json.loads(client.roles["iot-provisioning"]["AssumeRolePolicyDocument"]) == expected_trust()
    assert after == predicted
    # The account came from the role's own ARN: no STS call for an existing role.
    assert caller.calls == 0

    client.calls.clear()
    done = iam.ensure_present(client, desired, False, caller)
    changed, _before, _after = done.changed, done.before, done.after
    assert not changed and client.mutating_calls() == []


@pytest.mark.parametrize(
    "trust",
    [
        # IoT is trusted, but without the confused-deputy conditions
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        },
        # IoT and another principal in the same statement
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["iot.amazonaws.com", "lambda.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        # the right statement plus a second one for everyone
        {
            "Version": "2012-10-17",
            "Statement": expected_trust()["Statement"] + TRUSTS_EVERYONE["Statement"],
        },
        # the right shape, for another account
        expected_trust(OTHER_ACCOUNT, f"arn:aws:iot:eu-west-1:{OTHER_ACCOUNT}:*"),
    ],
    ids=["no-conditions", "extra-service", "extra-statement", "other-account"],
)
def test_any_other_trust_policy_is_replaced(client, trust):
    client.add_role("iot-provisioning", trust, managed=[REGISTRATION])
    done = iam.ensure_present(client, iam.validate(params()), False, Caller())
    changed, _before, after = done.changed, done.before, done.after
    assert changed
    assert client.mutating_calls() == ["update_assume_role_policy"]
    assert after["trust_policy"] == expected_trust()


def test_the_same_trust_policy_written_differently_is_no_change(client):
    statement = expected_trust()["Statement"][0]
    written = {
        "Statement": {
            **statement,
            "Principal": {"Service": ["iot.amazonaws.com"]},
            "Action": ["sts:AssumeRole"],
            "Condition": {
                "ArnLike": {"aws:SourceArn": [f"arn:aws:iot:eu-west-1:{ACCOUNT}:*"]},
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
            },
        },
        "Version": "2012-10-17",
    }
    client.add_role("iot-provisioning", written, managed=[REGISTRATION])
    done = iam.ensure_present(client, iam.validate(params()), False, Caller())
    changed, before, after = done.changed, done.before, done.after
    assert not changed and before == after
    assert client.mutating_calls() == []


# --------------------------------------------------------------------------- policies the module does not own


def test_extra_policies_are_reported_and_kept(client):
    client.add_role(
        "iot-provisioning",
        expected_trust(),
        managed=[REGISTRATION, ADMIN],
        inline={"anything": TRUSTS_EVERYONE, iam.INPUT_READ_POLICY_NAME: iam.input_read_policy("aws", "b-1", "k")},
    )
    done = iam.ensure_present(client, iam.validate(params()), False, Caller())
    changed, before, after = done.changed, done.before, done.after
    assert not changed and client.mutating_calls() == []
    assert iam.extra_policies(before, "aws") == {"managed_policy_arns": [ADMIN], "inline_policy_names": ["anything"]}
    assert ADMIN in after["managed_policy_arns"] and "anything" in after["inline_policies"]


def test_purge_policies_removes_only_what_is_not_ours(client):
    client.add_role(
        "iot-provisioning",
        TRUSTS_EVERYONE,
        managed=[ADMIN],
        inline={"anything": TRUSTS_EVERYONE, iam.INPUT_READ_POLICY_NAME: iam.input_read_policy("aws", "b-1", "k")},
    )
    desired = iam.validate(params(purge_policies=True))

    done = iam.ensure_present(client, desired, True, Caller())
    changed, before, predicted = done.changed, done.before, done.after
    assert changed and client.mutating_calls() == []
    assert predicted["managed_policy_arns"] == [REGISTRATION]
    assert list(predicted["inline_policies"]) == [iam.INPUT_READ_POLICY_NAME]
    assert iam.extra_policies(before, "aws")["managed_policy_arns"] == [ADMIN]

    done = iam.ensure_present(client, desired, False, Caller())
    changed, _before, after = done.changed, done.before, done.after
    assert changed
    assert client.mutating_calls() == [
        "update_assume_role_policy",
        "attach_role_policy",
        "detach_role_policy",
        "delete_role_policy",
    ]
    assert after == predicted
    assert client.roles["iot-provisioning"]["managed"] == [REGISTRATION]
    assert iam.extra_policies(after, "aws") == {"managed_policy_arns": [], "inline_policy_names": []}

    client.calls.clear()
    done = iam.ensure_present(client, desired, False, Caller())
    changed, _before, _after = done.changed, done.before, done.after
    assert not changed and client.mutating_calls() == []


def test_a_region_that_is_no_aws_region_is_refused(client):
    client.meta.region_name = "aws-global"
    with pytest.raises(ValidationError, match=r"^source_regions:"):
        iam.ensure_present(client, iam.validate(params()), True, Caller())
    assert client.mutating_calls() == []


def test_extra_policies_of_no_role_are_empty():
    assert iam.extra_policies(None, "aws") == {"managed_policy_arns": [], "inline_policy_names": []}


def test_trust_policy_is_not_shared_between_calls():
    first = iam.trust_policy("aws", ACCOUNT, ["eu-west-1"])
    second = copy.deepcopy(first)
    first["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] = "x"
    assert iam.trust_policy("aws", ACCOUNT, ["eu-west-1"]) == second
