"""The policy family: validation, document normalisation, version planning, attachments, listing."""

from __future__ import annotations

import datetime
import json

import pytest
from botocore.exceptions import ClientError

from ansible_collections.iotfleet.provisioning.plugins.module_utils import (
    policies,
    policy_attachments,
    policy_documents,
    retry,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.ensure import Ensured
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

ACCOUNT = "123456789012"
CERT_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
CERT_ARN = f"arn:aws:iot:us-east-1:{ACCOUNT}:cert/{CERT_ID}"
GROUP_ARN = f"arn:aws:iot:us-east-1:{ACCOUNT}:thinggroup/fleet-a"
MUTATING = {
    "create_policy",
    "create_policy_version",
    "delete_policy_version",
    "delete_policy",
    "attach_policy",
    "detach_policy",
    "set_default_policy_version",
}


def doc(*statements, version="2012-10-17"):
    return {"Version": version, "Statement": list(statements)}


ALLOW_CONNECT = {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}


def _error(operation: str, code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code}}, operation)


class FakeIoT:
    """Just enough of AWS IoT's policy APIs, with AWS's rules, paging and errors."""

    def __init__(self, page_size: int = 2):
        self.policies: dict[str, dict] = {}
        self.attachments: set[tuple[str, str]] = set()  # (target, policy)
        self.certificates = {CERT_ID: CERT_ARN}
        self.calls: list[str] = []
        self.page_size = page_size
        self.delete_conflicts_left = 0  # simulate eventual consistency after DetachPolicy
        self._clock = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

    # helpers
    def mutating_calls(self) -> list[str]:
        return [c for c in self.calls if c in MUTATING]

    def _now(self) -> datetime.datetime:
        self._clock += datetime.timedelta(seconds=1)
        return self._clock

    def _get(self, op: str, name: str) -> dict:
        if name not in self.policies:
            raise _error(op, "ResourceNotFoundException")
        return self.policies[name]

    def _page(self, items: list, key: str, marker: str | None, page_size: int | None):
        size = min(page_size or self.page_size, self.page_size)
        start = int(marker or 0)
        page = {key: items[start : start + size]}
        if start + size < len(items):
            page["nextMarker"] = str(start + size)
        return page

    def seed(self, name: str, documents: list, default_index: int = -1) -> None:
        versions = [
            {"id": str(i + 1), "document": json.dumps(d), "created": self._now()} for i, d in enumerate(documents)
        ]
        self.policies[name] = {
            "versions": versions,
            "default": versions[default_index]["id"],
            "next_id": len(versions) + 1,
        }

    # botocore client surface
    def can_paginate(self, _operation: str) -> bool:
        return False

    def get_policy(self, policyName):
        self.calls.append("get_policy")
        policy = self._get("GetPolicy", policyName)
        default = next(v for v in policy["versions"] if v["id"] == policy["default"])
        return {
            "policyName": policyName,
            "policyArn": f"arn:aws:iot:us-east-1:{ACCOUNT}:policy/{policyName}",
            "policyDocument": default["document"],
            "defaultVersionId": policy["default"],
        }

    def list_policy_versions(self, policyName):
        self.calls.append("list_policy_versions")
        policy = self._get("ListPolicyVersions", policyName)
        # newest first, as a reminder that the order AWS returns is not ours to rely on
        return {
            "policyVersions": [
                {"versionId": v["id"], "isDefaultVersion": v["id"] == policy["default"], "createDate": v["created"]}
                for v in reversed(policy["versions"])
            ]
        }

    def create_policy(self, policyName, policyDocument):
        self.calls.append("create_policy")
        if policyName in self.policies:
            raise _error("CreatePolicy", "ResourceAlreadyExistsException")
        self.policies[policyName] = {
            "versions": [{"id": "1", "document": policyDocument, "created": self._now()}],
            "default": "1",
            "next_id": 2,
        }
        return {"policyName": policyName, "policyVersionId": "1"}

    def create_policy_version(self, policyName, policyDocument, setAsDefault=False):
        self.calls.append("create_policy_version")
        policy = self._get("CreatePolicyVersion", policyName)
        if len(policy["versions"]) >= 5:
            raise _error("CreatePolicyVersion", "VersionsLimitExceededException")
        version_id = str(policy["next_id"])
        policy["next_id"] += 1
        policy["versions"].append({"id": version_id, "document": policyDocument, "created": self._now()})
        if setAsDefault:
            policy["default"] = version_id
        return {"policyVersionId": version_id, "isDefaultVersion": setAsDefault}

    def delete_policy_version(self, policyName, policyVersionId):
        self.calls.append("delete_policy_version")
        policy = self._get("DeletePolicyVersion", policyName)
        if policyVersionId == policy["default"]:
            raise _error("DeletePolicyVersion", "InvalidRequestException", "Cannot delete the default version")
        before = len(policy["versions"])
        policy["versions"] = [v for v in policy["versions"] if v["id"] != policyVersionId]
        if len(policy["versions"]) == before:
            raise _error("DeletePolicyVersion", "ResourceNotFoundException")

    def delete_policy(self, policyName):
        self.calls.append("delete_policy")
        policy = self._get("DeletePolicy", policyName)
        if self.delete_conflicts_left:
            self.delete_conflicts_left -= 1
            raise _error("DeletePolicy", "DeleteConflictException", "attached to one or more principals")
        if any(p == policyName for _t, p in self.attachments):
            raise _error("DeletePolicy", "DeleteConflictException", "attached to one or more principals")
        if len(policy["versions"]) > 1:
            raise _error("DeletePolicy", "DeleteConflictException", "has one or more policy versions")
        del self.policies[policyName]

    def list_targets_for_policy(self, policyName, marker=None, pageSize=None):
        self.calls.append("list_targets_for_policy")
        self._get("ListTargetsForPolicy", policyName)
        targets = sorted(t for t, p in self.attachments if p == policyName)
        return self._page(targets, "targets", marker, pageSize)

    def list_attached_policies(self, target, marker=None, pageSize=None, recursive=False):
        self.calls.append("list_attached_policies")
        names = sorted(p for t, p in self.attachments if t == target)
        items = [{"policyName": n, "policyArn": f"arn:aws:iot:us-east-1:{ACCOUNT}:policy/{n}"} for n in names]
        return self._page(items, "policies", marker, pageSize)

    def list_policies(self, marker=None, pageSize=None):
        self.calls.append("list_policies")
        items = [
            {"policyName": n, "policyArn": f"arn:aws:iot:us-east-1:{ACCOUNT}:policy/{n}"} for n in sorted(self.policies)
        ]
        return self._page(items, "policies", marker, pageSize)

    def attach_policy(self, policyName, target):
        self.calls.append("attach_policy")
        self._get("AttachPolicy", policyName)
        self.attachments.add((target, policyName))

    def detach_policy(self, policyName, target):
        self.calls.append("detach_policy")
        if (target, policyName) not in self.attachments:
            raise _error("DetachPolicy", "ResourceNotFoundException")
        self.attachments.discard((target, policyName))

    def describe_certificate(self, certificateId):
        self.calls.append("describe_certificate")
        if certificateId not in self.certificates:
            raise _error("DescribeCertificate", "ResourceNotFoundException")
        return {
            "certificateDescription": {
                "certificateId": certificateId,
                "certificateArn": self.certificates[certificateId],
            }
        }


@pytest.fixture()
def iot() -> FakeIoT:
    return FakeIoT()


def _desired(name: str, document) -> dict:
    return policies.validate_policy({"name": name, "document": document, "state": "present"})


# ---------------------------------------------------------------------------
# normalize_document
# ---------------------------------------------------------------------------


class TestNormalize:
    def test_key_order_is_not_significant(self):
        a = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
        b = {"Statement": [{"Resource": "*", "Action": "iot:Connect", "Effect": "Allow"}], "Version": "2012-10-17"}
        assert policy_documents.normalize_document(a) == policy_documents.normalize_document(b)
        assert policy_documents.documents_equal(a, b)

    def test_canonical_output_has_sorted_keys(self):
        out = policy_documents.normalize_document(
            {"Version": "2012-10-17", "Statement": {"Resource": "*", "Effect": "Allow"}}
        )
        assert list(out) == ["Statement", "Version"]
        assert list(out["Statement"][0]) == ["Effect", "Resource"]

    def test_whitespace_in_json_text_is_not_significant(self):
        compact = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}'
        spaced = (
            '{\n  "Version" : "2012-10-17",\n\t"Statement": [ { "Effect": "Allow",'
            ' "Action": "iot:Connect",  "Resource": "*" } ]\n}'
        )
        assert policy_documents.documents_equal(compact, spaced)
        assert policy_documents.documents_equal(json.loads(compact), spaced)

    @pytest.mark.parametrize("element", ["Action", "NotAction", "Resource", "NotResource"])
    def test_one_item_list_equals_plain_string(self, element):
        a = doc({"Effect": "Allow", element: ["iot:Connect"]})
        b = doc({"Effect": "Allow", element: "iot:Connect"})
        assert policy_documents.documents_equal(a, b)
        assert policy_documents.normalize_document(a)["Statement"][0][element] == "iot:Connect"

    def test_two_item_list_is_not_collapsed_and_order_matters(self):
        a = doc({"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "*"})
        b = doc({"Effect": "Allow", "Action": ["iot:Receive", "iot:Publish"], "Resource": "*"})
        c = doc({"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"})
        assert not policy_documents.documents_equal(a, b)
        assert not policy_documents.documents_equal(a, c)
        assert policy_documents.normalize_document(a)["Statement"][0]["Action"] == ["iot:Publish", "iot:Receive"]

    def test_condition_values_one_item_list_equals_string(self):
        a = doc({**ALLOW_CONNECT, "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}}})
        b = doc({**ALLOW_CONNECT, "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}})
        assert policy_documents.documents_equal(a, b)

    def test_condition_values_are_significant(self):
        a = doc({**ALLOW_CONNECT, "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}})
        b = doc({**ALLOW_CONNECT, "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "false"}}})
        c = doc({**ALLOW_CONNECT, "Condition": {"StringEquals": {"iot:Connection.Thing.IsAttached": "true"}}})
        assert not policy_documents.documents_equal(a, b)
        assert not policy_documents.documents_equal(a, c)

    def test_condition_key_order_is_not_significant(self):
        a = doc({**ALLOW_CONNECT, "Condition": {"StringLike": {"k1": "a", "k2": "b"}, "Bool": {"k3": "true"}}})
        b = doc({**ALLOW_CONNECT, "Condition": {"Bool": {"k3": ["true"]}, "StringLike": {"k2": ["b"], "k1": "a"}}})
        assert policy_documents.documents_equal(a, b)

    def test_principal_values_one_item_list(self):
        a = doc({**ALLOW_CONNECT, "Principal": {"AWS": ["arn:aws:iam::123456789012:root"]}})
        b = doc({**ALLOW_CONNECT, "Principal": {"AWS": "arn:aws:iam::123456789012:root"}})
        assert policy_documents.documents_equal(a, b)

    def test_statement_object_equals_one_item_list(self):
        a = {"Version": "2012-10-17", "Statement": ALLOW_CONNECT}
        b = {"Version": "2012-10-17", "Statement": [ALLOW_CONNECT]}
        assert policy_documents.documents_equal(a, b)
        assert policy_documents.normalize_document(a)["Statement"] == [ALLOW_CONNECT]

    def test_statement_order_is_significant(self):
        other = {"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}
        assert not policy_documents.documents_equal(doc(ALLOW_CONNECT, other), doc(other, ALLOW_CONNECT))

    def test_version_is_significant(self):
        assert not policy_documents.documents_equal(doc(ALLOW_CONNECT), doc(ALLOW_CONNECT, version="2008-10-17"))

    def test_sid_is_significant(self):
        assert not policy_documents.documents_equal(
            doc({**ALLOW_CONNECT, "Sid": "a"}), doc({**ALLOW_CONNECT, "Sid": "b"})
        )
        assert not policy_documents.documents_equal(doc({**ALLOW_CONNECT, "Sid": "a"}), doc(ALLOW_CONNECT))

    def test_effect_and_values_are_significant(self):
        assert not policy_documents.documents_equal(doc(ALLOW_CONNECT), doc({**ALLOW_CONNECT, "Effect": "Deny"}))
        assert not policy_documents.documents_equal(doc(ALLOW_CONNECT), doc({**ALLOW_CONNECT, "Resource": "arn:x"}))

    def test_one_item_list_is_collapsed_only_in_the_grammar_elements(self):
        # an unknown element keeps its list: the normaliser must not invent equivalences
        a = doc({**ALLOW_CONNECT, "Custom": ["x"]})
        b = doc({**ALLOW_CONNECT, "Custom": "x"})
        assert not policy_documents.documents_equal(a, b)

    def test_empty_list_is_not_a_string(self):
        assert not policy_documents.documents_equal(
            doc({"Effect": "Allow", "Action": [], "Resource": "*"}), doc({"Effect": "Allow", "Resource": "*"})
        )

    def test_nested_values_are_canonical(self):
        a = {"Version": "2012-10-17", "Statement": [ALLOW_CONNECT], "Extra": {"b": [{"y": 1, "x": 2}], "a": 1}}
        out = policy_documents.normalize_document(a)
        assert list(out["Extra"]) == ["a", "b"]
        assert list(out["Extra"]["b"][0]) == ["x", "y"]

    def test_value_types_are_significant(self):
        a = doc({**ALLOW_CONNECT, "Condition": {"NumericLessThan": {"k": 5}}})
        b = doc({**ALLOW_CONNECT, "Condition": {"NumericLessThan": {"k": "5"}}})
        assert not policy_documents.documents_equal(a, b)

    def test_input_is_not_mutated(self):
        a = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*"}}
        copy = json.loads(json.dumps(a))
        policy_documents.normalize_document(a)
        assert a == copy

    def test_non_json_text_is_kept_and_differs(self):
        assert policy_documents.normalize_document("{not json") == "{not json"
        assert not policy_documents.documents_equal("{not json", doc(ALLOW_CONNECT))

    def test_full_realistic_equivalence(self):
        user_yaml = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["iot:Connect"],
                    "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
                    "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}},
                },
                {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "*"},
            ],
        }
        remote_text = json.dumps(
            {
                "Statement": [
                    {
                        "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
                        "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}",
                        "Action": "iot:Connect",
                        "Effect": "Allow",
                    },
                    {"Resource": ["*"], "Action": ["iot:Publish", "iot:Receive"], "Effect": "Allow"},
                ],
                "Version": "2012-10-17",
            },
            indent=4,
        )
        assert policy_documents.documents_equal(remote_text, user_yaml)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


class TestValidateName:
    @pytest.mark.parametrize("name", ["a", "device_policy-1", "x+y=z,w.v@u", "A" * 128, "0"])
    def test_valid(self, name):
        assert policies.validate_policy_name(name) == name

    @pytest.mark.parametrize("name", ["bad name", "bad/name", "bad!", "naïve", "a:b", "tab\t"])
    def test_invalid_characters(self, name):
        with pytest.raises(ValidationError) as raised:
            policies.validate_policy_name(name)
        assert raised.value.field == "name"
        assert "[\\w+=,.@-]+" in raised.value.rule
        assert repr(name) in raised.value.rule

    def test_too_long(self):
        with pytest.raises(ValidationError, match=r"name: .*at most 128 characters, got 129"):
            policies.validate_policy_name("a" * 129)

    @pytest.mark.parametrize("name", ["", None])
    def test_empty(self, name):
        with pytest.raises(ValidationError, match="name: "):
            policies.validate_policy_name(name)

    def test_field_name_is_the_option(self):
        with pytest.raises(ValidationError, match=r"^policy: "):
            policies.validate_policy_name("bad name", field="policy")


def _document_of_size(size: int, spaced: bool = False) -> str:
    """A JSON document with exactly `size` non-whitespace characters."""
    base = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":""}}'
    text = base.replace('"Resource":""', '"Resource":"' + "a" * (size - len(base)) + '"')
    if spaced:
        text = json.dumps(json.loads(text), indent=40)
    assert policy_documents.size_without_whitespace(text) == size
    return text


class TestParseDocument:
    def test_dict_is_serialised_and_parsed(self):
        parsed, text = policy_documents.parse_document(doc(ALLOW_CONNECT))
        assert parsed == doc(ALLOW_CONNECT)
        assert json.loads(text) == doc(ALLOW_CONNECT)

    def test_json_string_is_sent_as_given(self):
        given = '  {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}}\n'
        parsed, text = policy_documents.parse_document(given)
        assert text == given.strip()
        assert parsed["Statement"]["Action"] == "iot:*"

    @pytest.mark.parametrize("effect", ["Alow", "allow", "DENY", None, ["Allow"]])
    def test_effect_must_be_allow_or_deny(self, effect):
        # AWS refuses these (MalformedPolicyException); "Alow" used to be sent (issue 10).
        statement = (
            {"Action": "iot:Connect", "Resource": "*"} if effect is None else {**ALLOW_CONNECT, "Effect": effect}
        )
        with pytest.raises(ValidationError) as raised:
            policy_documents.parse_document(doc(ALLOW_CONNECT, statement))
        assert raised.value.field == "document.Statement[1]"
        assert '\'Effect\' must be "Allow" or "Deny"' in raised.value.rule

    @pytest.mark.parametrize("missing", ["Action", "Resource"])
    def test_statement_needs_an_action_and_a_resource(self, missing):
        statement = {key: value for key, value in ALLOW_CONNECT.items() if key != missing}
        with pytest.raises(ValidationError, match=f"a statement needs '{missing}'"):
            policy_documents.parse_document(doc(statement))
        policy_documents.parse_document(doc({**statement, f"Not{missing}": "*"}))

    @pytest.mark.parametrize("text", ['{"Version": "2012-10-17",', "{not json}", "Version: 2012-10-17"])
    def test_invalid_json(self, text):
        with pytest.raises(ValidationError) as raised:
            policy_documents.parse_document(text)
        assert str(raised.value).startswith("document: a policy document must be valid JSON")

    @pytest.mark.parametrize(("value", "kind"), [("[1, 2]", "list"), ('"text"', "string"), ("3", "number")])
    def test_json_that_is_not_an_object(self, value, kind):
        with pytest.raises(ValidationError, match=f"document: .*must be a JSON object, got a JSON {kind}"):
            policy_documents.parse_document(value)

    @pytest.mark.parametrize(("value", "kind"), [(["a"], "list"), (5, "number"), (True, "boolean")])
    def test_wrong_type(self, value, kind):
        with pytest.raises(ValidationError, match=f"document: .*dict or a JSON string, got {kind}"):
            policy_documents.parse_document(value)

    def test_empty_string(self):
        with pytest.raises(ValidationError, match=r"document: .*empty string"):
            policy_documents.parse_document("   ")

    @pytest.mark.parametrize(
        ("value", "missing"),
        [
            ({"Statement": [ALLOW_CONNECT]}, "'Version'"),
            ({"Version": "2012-10-17"}, "'Statement'"),
            ({}, "'Version' and 'Statement'"),
        ],
    )
    def test_required_keys(self, value, missing):
        with pytest.raises(ValidationError, match=f"document: a policy document must have {missing} at the top level"):
            policy_documents.parse_document(value)

    @pytest.mark.parametrize("statement", [[], "Allow", ["x"], [ALLOW_CONNECT, 3]])
    def test_statement_shape(self, statement):
        with pytest.raises(ValidationError, match="document: 'Statement' must be an object or a non-empty list"):
            policy_documents.parse_document({"Version": "2012-10-17", "Statement": statement})

    def test_size_limit_boundary(self):
        policy_documents.parse_document(_document_of_size(2048))
        with pytest.raises(ValidationError) as raised:
            policy_documents.parse_document(_document_of_size(2049))
        assert raised.value.field == "document"
        assert "at most 2048 characters excluding whitespace, this one has 2049" in raised.value.rule

    def test_whitespace_does_not_count(self):
        text = _document_of_size(2048, spaced=True)
        assert len(text) > 2100
        parsed, sent = policy_documents.parse_document(text)
        assert sent == text
        assert parsed["Statement"]["Effect"] == "Allow"

    def test_size_of_a_dict_is_measured_on_what_is_sent(self):
        parsed = json.loads(_document_of_size(2048))
        _parsed, text = policy_documents.parse_document(parsed)
        assert policy_documents.size_without_whitespace(text) == 2048
        parsed["Statement"]["Resource"] += "a"
        with pytest.raises(ValidationError, match="this one has 2049"):
            policy_documents.parse_document(parsed)

    def test_non_ascii_counts_as_one_character(self):
        parsed = json.loads(_document_of_size(2048))
        parsed["Statement"]["Resource"] = parsed["Statement"]["Resource"][:-1] + "é"
        _parsed, text = policy_documents.parse_document(parsed)
        assert "é" in text
        assert policy_documents.size_without_whitespace(text) == 2048


class TestValidatePolicy:
    def test_present_needs_document(self):
        with pytest.raises(ValidationError, match=r"^document: required when state=present"):
            policies.validate_policy({"name": "p", "state": "present", "document": None})

    def test_absent_ignores_document(self):
        assert policies.validate_policy({"name": "p", "state": "absent", "document": "{bad"}) == policies.DesiredPolicy(
            "p"
        )

    def test_name_is_checked_first(self):
        with pytest.raises(ValidationError, match=r"^name: "):
            policies.validate_policy({"name": "bad name", "state": "present", "document": "{bad"})


class TestParseTarget:
    def test_certificate_id(self):
        assert policy_attachments.parse_target(CERT_ID) == {
            "kind": "certificate",
            "arn": None,
            "certificate_id": CERT_ID,
        }

    def test_certificate_id_uppercase_is_lowered(self):
        assert policy_attachments.parse_target(CERT_ID.upper())["certificate_id"] == CERT_ID

    def test_certificate_arn(self):
        assert policy_attachments.parse_target(CERT_ARN) == {
            "kind": "certificate",
            "arn": CERT_ARN,
            "certificate_id": CERT_ID,
        }

    @pytest.mark.parametrize("partition", ["aws-cn", "aws-us-gov"])
    def test_other_partitions(self, partition):
        arn = f"arn:{partition}:iot:cn-north-1:{ACCOUNT}:cert/{CERT_ID}"
        assert policy_attachments.parse_target(arn)["arn"] == arn

    def test_thing_group_arn(self):
        assert policy_attachments.parse_target(GROUP_ARN) == {
            "kind": "thing_group",
            "arn": GROUP_ARN,
            "certificate_id": None,
        }

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "not a target",
            CERT_ID[:-1],
            CERT_ID + "0",
            "0a1b",
            f"arn:aws:iot:us-east-1:{ACCOUNT}:thing/my-thing",
            f"arn:aws:iot:us-east-1:{ACCOUNT}:policy/p",
            f"arn:aws:iam::{ACCOUNT}:role/r",
            f"arn:aws:iot:us-east-1:12345:cert/{CERT_ID}",
            f"arn:azure:iot:us-east-1:{ACCOUNT}:cert/{CERT_ID}",
            f" {CERT_ARN}",
            "g" * 129,
        ],
    )
    def test_refused(self, value):
        with pytest.raises(ValidationError) as raised:
            policy_attachments.parse_target(value)
        assert raised.value.field == "target"
        assert "certificate id (64 hexadecimal characters)" in raised.value.rule

    @pytest.mark.parametrize("name", ["fleet-a", "line:1_b", "0x" + CERT_ID[2:]])
    def test_thing_group_name(self, name):
        # As the thing_group module takes it (issue 10): its ARN is looked up at apply.
        assert policy_attachments.parse_target(name) == {
            "kind": "thing_group",
            "arn": None,
            "certificate_id": None,
            "thing_group": name,
        }

    def test_certificate_arn_with_bad_id(self):
        with pytest.raises(ValidationError, match="target: a certificate ARN must end in cert/ and a 64-hex"):
            policy_attachments.parse_target(f"arn:aws:iot:us-east-1:{ACCOUNT}:cert/abc")

    def test_thing_group_arn_with_bad_name(self):
        with pytest.raises(ValidationError, match=r"target: a thing group ARN .*1-128 characters"):
            policy_attachments.parse_target(f"arn:aws:iot:us-east-1:{ACCOUNT}:thinggroup/bad name")

    def test_validate_attachment(self):
        desired = policy_attachments.validate_attachment({"policy": "p", "target": GROUP_ARN, "state": "absent"})
        assert desired == policy_attachments.DesiredAttachment(
            "p", policy_attachments.parse_target(GROUP_ARN), "absent"
        )
        with pytest.raises(ValidationError, match=r"^policy: "):
            policy_attachments.validate_attachment({"policy": "bad/name", "target": GROUP_ARN})


# ---------------------------------------------------------------------------
# version planning
# ---------------------------------------------------------------------------


def _versions(default: str, ids=("1", "2", "3", "4", "5")):
    return [{"version_id": v, "is_default_version": v == default} for v in ids]


class TestVersionsToPrune:
    def test_room_left(self):
        assert policies.versions_to_prune(_versions("1", ids=("1", "2", "3", "4"))) == []

    def test_oldest_non_default(self):
        assert policies.versions_to_prune(_versions("5")) == ["1"]

    def test_default_is_oldest(self):
        assert policies.versions_to_prune(_versions("1")) == ["2"]

    def test_default_in_the_middle(self):
        assert policies.versions_to_prune(_versions("3", ids=("3", "4", "6", "7", "9"))) == ["4"]

    def test_over_the_limit_prunes_enough(self):
        assert policies.versions_to_prune(_versions("1"), limit=3) == ["2", "3", "4"]


# ---------------------------------------------------------------------------
# ensure_present / ensure_absent
# ---------------------------------------------------------------------------


class TestEnsurePresent:
    def test_create_in_check_mode_predicts_and_does_not_mutate(self, iot):
        done = policies.ensure_present(iot, _desired("p", doc(ALLOW_CONNECT)), check_mode=True)
        changed, before, after = done.changed, done.before, done.after
        assert changed is True
        assert before is None
        assert after["document"] == doc(ALLOW_CONNECT)
        assert policies.policy_result(after)["version_count"] == 1
        assert iot.mutating_calls() == []
        assert "p" not in iot.policies

    def test_create(self, iot):
        done = policies.ensure_present(iot, _desired("p", doc(ALLOW_CONNECT)), check_mode=False)
        changed, before, after = done.changed, done.before, done.after
        assert changed is True and before is None
        assert iot.mutating_calls() == ["create_policy"]
        assert after["arn"] == f"arn:aws:iot:us-east-1:{ACCOUNT}:policy/p"
        assert after["document"] == doc(ALLOW_CONNECT)
        assert after["default_version_id"] == "1"

    def test_equivalent_document_is_no_change_and_no_mutating_call(self, iot):
        iot.seed("p", [doc({"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["*"]})])
        equivalent = (
            '{ "Statement": {"Resource": "*", "Effect": "Allow", "Action": "iot:Connect"}, "Version": "2012-10-17" }'
        )
        for check_mode in (True, False):
            done = policies.ensure_present(iot, _desired("p", equivalent), check_mode=check_mode)
            changed, before, after = done.changed, done.before, done.after
            assert changed is False
            assert before == after
        assert iot.mutating_calls() == []

    def test_changed_document_makes_a_new_default_version(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        new = doc({**ALLOW_CONNECT, "Action": "iot:Publish"})
        done = policies.ensure_present(iot, _desired("p", new), check_mode=False)
        changed, before, after = done.changed, done.before, done.after
        assert changed is True
        assert iot.mutating_calls() == ["create_policy_version"]
        assert before["document"] == doc(ALLOW_CONNECT)
        assert after["document"] == new
        assert after["default_version_id"] == "2"
        assert len(after["versions"]) == 2

    def test_check_mode_update_predicts_without_mutating(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)] * 5, default_index=2)
        new = doc({**ALLOW_CONNECT, "Action": "iot:Publish"})
        done = policies.ensure_present(iot, _desired("p", new), check_mode=True)
        changed, before, after = done.changed, done.before, done.after
        assert changed is True
        assert iot.mutating_calls() == []
        assert after["document"] == new
        assert after["default_version_id"] is None
        assert policies.policy_result(after)["version_count"] == 5
        assert policies.policy_diff_view(before) == {
            "name": "p",
            "document": policy_documents.normalize_document(doc(ALLOW_CONNECT)),
        }
        assert policies.policy_diff_view(after) == {"name": "p", "document": policy_documents.normalize_document(new)}

    def test_rollover_deletes_oldest_non_default_first(self, iot):
        iot.seed("p", [doc({**ALLOW_CONNECT, "Sid": f"s{i}"}) for i in range(5)], default_index=0)
        new = doc({**ALLOW_CONNECT, "Sid": "new"})
        done = policies.ensure_present(iot, _desired("p", new), check_mode=False)
        changed, _before, after = done.changed, done.before, done.after
        assert changed is True
        assert iot.mutating_calls() == ["delete_policy_version", "create_policy_version"]
        assert [v["version_id"] for v in after["versions"]] == ["1", "3", "4", "5", "6"]
        assert after["default_version_id"] == "6"

    def test_six_changes_in_a_row_stay_within_five_versions(self, iot):
        for i in range(7):
            policies.ensure_present(iot, _desired("p", doc({**ALLOW_CONNECT, "Sid": f"s{i}"})), check_mode=False)
            assert len(iot.policies["p"]["versions"]) <= 5
        policy = policies.read_policy(iot, "p")
        assert policy["default_version_id"] == "7"
        assert policy["document"]["Statement"][0]["Sid"] == "s6"
        assert [v["version_id"] for v in policy["versions"]] == ["3", "4", "5", "6", "7"]


class TestEnsureAbsent:
    def test_missing_is_no_change(self, iot):
        assert policies.ensure_absent(iot, "p", check_mode=False) == Ensured(
            False, None, None, {"detached_targets": []}
        )
        assert iot.mutating_calls() == []

    def test_attached_without_force_is_refused_in_check_mode_too(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        iot.attachments |= {(CERT_ARN, "p"), (GROUP_ARN, "p")}
        for check_mode in (True, False):
            with pytest.raises(policies.PolicyAttachedError) as raised:
                policies.ensure_absent(iot, "p", check_mode=check_mode)
            assert sorted(raised.value.targets) == sorted([CERT_ARN, GROUP_ARN])
            assert CERT_ARN in str(raised.value) and "force" in str(raised.value)
        assert iot.mutating_calls() == []

    def test_force_in_check_mode_does_not_mutate(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        iot.attachments.add((CERT_ARN, "p"))
        done = policies.ensure_absent(iot, "p", check_mode=True, force=True)
        changed, before, after, targets = done.changed, done.before, done.after, done.extra["detached_targets"]
        assert (changed, after, targets) == (True, None, [CERT_ARN])
        assert before["name"] == "p"
        assert iot.mutating_calls() == []

    def test_force_detaches_deletes_versions_then_policy(self, iot):
        iot.page_size = 1  # targets come on several pages
        iot.seed("p", [doc({**ALLOW_CONNECT, "Sid": f"s{i}"}) for i in range(3)], default_index=1)
        iot.attachments |= {(CERT_ARN, "p"), (GROUP_ARN, "p")}
        done = policies.ensure_absent(iot, "p", check_mode=False, force=True)
        changed, _before, _after, targets = done.changed, done.before, done.after, done.extra["detached_targets"]
        assert changed is True
        assert sorted(targets) == sorted([CERT_ARN, GROUP_ARN])
        assert iot.mutating_calls() == [
            "detach_policy",
            "detach_policy",
            "delete_policy_version",
            "delete_policy_version",
            "delete_policy",
        ]
        assert "p" not in iot.policies and not iot.attachments

    def test_unattached_policy_with_versions_is_deleted_without_force(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT), doc({**ALLOW_CONNECT, "Sid": "x"})])
        done = policies.ensure_absent(iot, "p", check_mode=False)
        changed, _before, _after, targets = done.changed, done.before, done.after, done.extra["detached_targets"]
        assert changed is True and targets == [] and "p" not in iot.policies
        assert iot.mutating_calls() == ["delete_policy_version", "delete_policy"]

    def test_delete_conflict_right_after_detach_is_retried(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        iot.delete_conflicts_left = 2
        slept = []
        done = policies.ensure_absent(iot, "p", check_mode=False, sleep=slept.append)
        changed, _before, _after, _targets = done.changed, done.before, done.after, done.extra["detached_targets"]
        assert changed is True and "p" not in iot.policies
        assert slept == [1.0, 2.0]

    def test_persistent_delete_conflict_is_raised(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        iot.delete_conflicts_left = 99
        with pytest.raises(ClientError) as raised:
            policies.ensure_absent(iot, "p", check_mode=False, sleep=lambda _s: None)
        assert raised.value.response["Error"]["Code"] == "DeleteConflictException"
        assert iot.calls.count("delete_policy") == len(retry.POLICY_DELETE.waits) + 1


# ---------------------------------------------------------------------------
# attachments
# ---------------------------------------------------------------------------


class TestAttachment:
    def _desired(self, target, state="present"):
        return policy_attachments.validate_attachment({"policy": "p", "target": target, "state": state})

    def test_attach_by_certificate_id(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        done = policy_attachments.ensure_attached(iot, self._desired(CERT_ID), check_mode=True)
        changed, before, after = done.changed, done.before, done.after
        assert (changed, before["attached"], after["attached"], after["target_arn"]) == (True, False, True, CERT_ARN)
        assert iot.mutating_calls() == []
        done = policy_attachments.ensure_attached(iot, self._desired(CERT_ID), check_mode=False)
        changed, _before, after = done.changed, done.before, done.after
        assert changed is True and after["attached"] is True
        assert (CERT_ARN, "p") in iot.attachments
        iot.calls.clear()
        done = policy_attachments.ensure_attached(iot, self._desired(CERT_ARN), check_mode=False)
        changed, _before, _after = done.changed, done.before, done.after
        assert changed is False
        assert iot.mutating_calls() == []

    def test_attached_found_on_a_later_page(self, iot):
        iot.page_size = 1
        for name in ("a", "b", "p"):
            iot.seed(name, [doc(ALLOW_CONNECT)])
            iot.attachments.add((GROUP_ARN, name))
        done = policy_attachments.ensure_attached(iot, self._desired(GROUP_ARN), check_mode=False)
        changed, _before, after = done.changed, done.before, done.after
        assert changed is False and after["attached"] is True
        assert iot.calls.count("list_attached_policies") == 3

    def test_attach_missing_policy_fails_in_check_mode_too(self, iot):
        for check_mode in (True, False):
            with pytest.raises(ClientError) as raised:
                policy_attachments.ensure_attached(iot, self._desired(GROUP_ARN), check_mode=check_mode)
            assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert iot.mutating_calls() == []

    def test_attach_unknown_certificate_id_fails(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        with pytest.raises(ClientError):
            policy_attachments.ensure_attached(iot, self._desired("f" * 64), check_mode=True)

    def test_detach(self, iot):
        iot.seed("p", [doc(ALLOW_CONNECT)])
        iot.attachments.add((GROUP_ARN, "p"))
        done = policy_attachments.ensure_detached(iot, self._desired(GROUP_ARN, "absent"), check_mode=True)
        changed, before, after = done.changed, done.before, done.after
        assert (changed, before["attached"], after["attached"]) == (True, True, False)
        assert iot.mutating_calls() == []
        done = policy_attachments.ensure_detached(iot, self._desired(GROUP_ARN, "absent"), check_mode=False)
        changed, _before, after = done.changed, done.before, done.after
        assert changed is True and after["attached"] is False and not iot.attachments
        iot.calls.clear()
        done = policy_attachments.ensure_detached(iot, self._desired(GROUP_ARN, "absent"), check_mode=False)
        changed, _before, _after = done.changed, done.before, done.after
        assert changed is False and iot.mutating_calls() == []

    def test_detach_from_unknown_certificate_id_is_no_change(self, iot):
        done = policy_attachments.ensure_detached(iot, self._desired("f" * 64, "absent"), check_mode=False)
        changed, _before, after = done.changed, done.before, done.after
        assert changed is False
        assert after == {"policy": "p", "target_arn": None, "attached": False}


# ---------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------


class TestInfo:
    def test_list_all_pages_without_documents(self, iot):
        for name in ("a", "b", "c", "d", "e"):
            iot.seed(name, [doc(ALLOW_CONNECT)])
        result = policies.policy_info(iot, {"name": None, "include_documents": False})
        assert [p["name"] for p in result] == ["a", "b", "c", "d", "e"]
        assert all(set(p) == {"name", "arn"} for p in result)
        assert iot.calls == ["list_policies"] * 3
        assert "get_policy" not in iot.calls

    def test_list_with_documents(self, iot):
        iot.seed("a", [doc(ALLOW_CONNECT), doc({**ALLOW_CONNECT, "Sid": "x"})])
        result = policies.policy_info(iot, {"name": None, "include_documents": True})
        assert result == [
            {
                "name": "a",
                "arn": f"arn:aws:iot:us-east-1:{ACCOUNT}:policy/a",
                "document": doc({**ALLOW_CONNECT, "Sid": "x"}),
                "default_version_id": "2",
            }
        ]

    def test_by_name(self, iot):
        iot.seed("a", [doc(ALLOW_CONNECT), doc({**ALLOW_CONNECT, "Sid": "x"})], default_index=0)
        iot.attachments.add((CERT_ARN, "a"))
        (policy,) = policies.policy_info(iot, {"name": "a"})
        assert policy["document"] == doc(ALLOW_CONNECT)
        assert policy["default_version_id"] == "1"
        assert policy["version_count"] == 2
        assert [(v["version_id"], v["is_default_version"]) for v in policy["versions"]] == [("1", True), ("2", False)]
        assert policy["versions"][0]["create_date"].startswith("2024-01-01T00:00:0")
        assert policy["targets"] == [CERT_ARN]

    def test_by_name_missing(self, iot):
        assert policies.policy_info(iot, {"name": "nope"}) == []

    def test_validate_info(self):
        assert policies.validate_policy_info({"name": None}) == {"name": None, "include_documents": False}
        with pytest.raises(ValidationError, match=r"^name: "):
            policies.validate_policy_info({"name": "bad name"})
