# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the provisioning template engine (no network).

Golden cases live in fixtures/templates/*.json: each holds a published AWS example (its source is named in the
file), the parameters, the rendered result and plans against hand-written account snapshots, all worked out by hand
from the documented semantics (each plan carries a "why"). The rest of this file has one test per rule.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import os

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import template_engine as te
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "templates")
FIXTURE_NAMES = sorted(name for name in os.listdir(FIXTURES) if name.endswith(".json"))
HEX_A = "a" * 64
HEX_B = "b" * 64
ARN = "arn:aws:iot:us-east-1:123456789012"


def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def fixture_body(fixture):
    if "registration_config" in fixture:
        return fixture["registration_config"]["templateBody"]
    return fixture.get("template_body", fixture.get("template"))


def golden_plans():
    for name in FIXTURE_NAMES:
        for case in load_fixture(name)["plans"]:
            yield pytest.param(name, case, id=f"{name[:-5]}: {case['name']}")


def project(action):
    """The part of an action the golden files pin down (reasons are prose, checked separately)."""
    out = {k: action[k] for k in ("resource", "logical_id", "action", "changes")}
    if action.get("ignored"):
        out["ignored"] = action["ignored"]
    return out


# --- crypto helpers (test side uses cryptography as an independent oracle) -----------------------------------


def make_key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key, cn="device-1"):
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def make_certificate(key, cn="device-1"):
    """A self-signed certificate for key, standing in for what AWS issues from a CSR with that key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2024, 1, 1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1234)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def spki_sha256(key):
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# --- template builders -----------------------------------------------------------------------------------------


def base_template():
    """A small valid template: thing + certificate by id + named policy."""
    return {
        "Parameters": {
            "ThingName": {"Type": "String"},
            "CertificateId": {"Type": "String"},
            "Location": {"Type": "String", "Default": "WA"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "ThingName"},
                    "AttributePayload": {"site": {"Ref": "Location"}},
                    "ThingGroups": ["sensors"],
                },
            },
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "CertificateId"}}},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "DevicePolicy"}},
        },
    }


def csr_template():
    """base_template with the certificate from a CSR parameter instead of an id."""
    template = base_template()
    template["Parameters"].pop("CertificateId")
    template["Parameters"]["CSR"] = {"Type": "String"}
    template["Resources"]["certificate"] = _certificate(CertificateSigningRequest={"Ref": "CSR"})
    return template


def thing_props(template):
    return template["Resources"]["thing"]["Properties"]


def render_base(template=None, **parameters):
    values = {"ThingName": "dev-1", "CertificateId": HEX_A}
    values.update(parameters)
    return te.render(template or base_template(), values)


def expect_error(call, path, fragment):
    with pytest.raises(te.TemplateError) as info:
        call()
    assert info.value.path == path, str(info.value)
    assert fragment in info.value.message, str(info.value)
    return info.value


# === golden cases ==============================================================================================


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_golden_render(name):
    fixture = load_fixture(name)
    template = te.parse(fixture_body(fixture), fixture["template_type"])
    assert te.render(template, fixture["parameters"]) == fixture["rendered"]


@pytest.mark.parametrize("name, case", list(golden_plans()))
def test_golden_plan(name, case):
    fixture = load_fixture(name)
    rendered = te.render(te.parse(fixture_body(fixture), fixture["template_type"]), fixture["parameters"])
    actions = te.plan(rendered, case["current"])
    assert [project(a) for a in actions] == case["actions"], case["why"]
    assert all(a["reason"] for a in actions)
    assert te.plan_is_empty(actions) is case["empty"]


def test_golden_csr_fingerprint_matches_cryptography():
    # The fixture's expected fingerprint was written down once; cryptography recomputes it independently here.
    fixture = load_fixture("bulk_csr.json")
    csr = x509.load_pem_x509_csr(fixture["parameters"]["CSR"].encode())
    der = csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert fixture["rendered"]["certificate"]["public_key_fingerprint"] == hashlib.sha256(der).hexdigest()


def test_golden_jitp_template_parses_with_and_without_its_type():
    # The JITP example declares its AWS::IoT::Certificate::* parameters, so they are ordinary parameters otherwise.
    body = load_fixture("jitp.json")["registration_config"]["templateBody"]
    assert te.parse(body).template_type is None
    assert te.parse(body, "JITP").template_type == "JITP"


def test_golden_fleet_template_needs_its_type_for_the_certificate_id_pseudo_parameter():
    fixture = load_fixture("fleet_provisioning.json")
    expect_error(
        lambda: te.parse(fixture["template"]),
        "Resources.certificate.Properties.CertificateId.Ref",
        "filled in by AWS only for JITP templates and fleet provisioning templates",
    )


def test_golden_cli_example_placeholder_certificate_id_is_refused():
    # The published CLI example passes 799a9ea048a1e6aea42b55EXAMPLEf8697b4bafcd77a318a3068e30404b9233c: not hex.
    fixture = load_fixture("register_thing_cli.json")
    parameters = dict(fixture["parameters"])
    parameters["AWS::IoT::Certificate::Id"] = "799a9ea048a1e6aea42b55EXAMPLEf8697b4bafcd77a318a3068e30404b9233c"
    expect_error(
        lambda: te.render(fixture["template_body"], parameters),
        "Resources.certificate.Properties.CertificateId",
        "64 hexadecimal characters",
    )


def test_golden_docs_trailing_space_typo_is_caught():
    # One published version declares "ThingName " (trailing space) but references "ThingName".
    template = load_fixture("bulk_csr.json")["template"]
    template["Parameters"]["ThingName "] = template["Parameters"].pop("ThingName")
    error = expect_error(
        lambda: te.parse(template), "Resources.thing.Properties.ThingName.Ref", "ThingName is not a declared parameter"
    )
    assert "did you mean ThingName ?" in error.message


# === parse: input forms and sections ===========================================================================


def test_parse_accepts_dict_json_and_yaml_alike():
    template = base_template()
    yaml_text = """
Parameters:
  ThingName: {Type: String}
  CertificateId: {Type: String}
  Location: {Type: String, Default: WA}
Resources:
  thing:
    Type: AWS::IoT::Thing
    Properties:
      ThingName: {Ref: ThingName}
      AttributePayload: {site: {Ref: Location}}
      ThingGroups: [sensors]
  certificate:
    Type: AWS::IoT::Certificate
    Properties: {CertificateId: {Ref: CertificateId}}
  policy:
    Type: AWS::IoT::Policy
    Properties: {PolicyName: DevicePolicy}
"""
    from_dict = te.parse(template).body
    assert te.parse(json.dumps(template)).body == from_dict
    assert te.parse(yaml_text).body == from_dict


def test_parse_does_not_keep_a_reference_to_the_callers_dict():
    template = base_template()
    parsed = te.parse(template)
    thing_props(template)["ThingName"] = "changed"
    assert parsed.body["Resources"]["thing"]["Properties"]["ThingName"] == {"Ref": "ThingName"}


def test_yaml_short_form_tags_are_explained():
    text = "Resources:\n  thing:\n    Type: AWS::IoT::Thing\n    Properties:\n      ThingName: !Ref ThingName\n"
    expect_error(lambda: te.parse(text), "template_body", "short-form tags such as !Ref")


def test_broken_json_reports_the_json_error():
    expect_error(lambda: te.parse('{"Resources": {'), "template_body", "is not valid JSON")


def test_yaml_strings_need_pyyaml(monkeypatch):
    monkeypatch.setattr(te, "HAS_YAML", False)
    expect_error(lambda: te.parse("Resources: {}"), "template_body", "YAML bodies need PyYAML")


def test_duplicate_json_keys_are_refused():
    text = '{"Resources": {"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "a", "PolicyName": "b"}}}}'
    expect_error(lambda: te.parse(text), "template_body", "duplicate key 'PolicyName'")


@pytest.mark.parametrize("body", [["Resources"], "[1, 2]", 42, "   "])
def test_body_must_be_an_object(body):
    with pytest.raises(te.TemplateError) as info:
        te.parse(body)
    assert info.value.path == "template_body"


def test_template_error_is_a_validation_error_naming_the_path():
    error = expect_error(lambda: te.parse({"Resources": {}}), "Resources", "non-empty")
    assert isinstance(error, ValidationError)
    assert str(error) == "Resources: must be a non-empty object of resources"


def _padded(size_target):
    template = base_template()
    template["Parameters"]["Location"]["Default"] = ""
    filler = size_target - len(te.template_body_json(template))
    template["Parameters"]["Location"]["Default"] = "x" * filler
    return template


def test_body_of_exactly_10240_characters_is_accepted():
    template = _padded(10240)
    assert len(te.template_body_json(template)) == 10240
    assert te.parse(template).to_json() == te.template_body_json(template)


def test_body_over_10240_characters_is_refused():
    expect_error(lambda: te.parse(_padded(10241)), "template_body", "at most 10240 characters as JSON, got 10241")


def test_body_size_counts_the_compact_json_not_the_callers_whitespace():
    template = _padded(10240)
    pretty = json.dumps(template, indent=8)
    assert len(pretty) > 10240
    assert te.parse(pretty).body == template


def test_non_ascii_counts_as_one_character_each():
    template = _padded(10240)
    default = template["Parameters"]["Location"]["Default"]
    template["Parameters"]["Location"]["Default"] = "é" + default[1:]
    assert te.parse(template)


# === malformed templates: one case per rule ====================================================================


def _with(mutate):
    def build():
        template = base_template()
        mutate(template)
        return template

    return build


def _set_thing(key, value):
    return _with(lambda t: thing_props(t).__setitem__(key, value))


def _set_resource(logical_id, resource):
    return _with(lambda t: t["Resources"].__setitem__(logical_id, resource))


def _certificate(**properties):
    return {"Type": "AWS::IoT::Certificate", "Properties": properties}


def _policy(**properties):
    return {"Type": "AWS::IoT::Policy", "Properties": properties}


MALFORMED = [
    ("conditions section", _with(lambda t: t.__setitem__("Conditions", {"c": {}})), "Conditions", "not supported"),
    ("unknown section", _with(lambda t: t.__setitem__("Outputs", {})), "Outputs", "unknown section"),
    ("missing Resources", _with(lambda t: t.pop("Resources")), "Resources", "is required"),
    ("Parameters not an object", _with(lambda t: t.__setitem__("Parameters", [])), "Parameters", "must be an object"),
    (
        "parameter type Number",
        _with(lambda t: t["Parameters"]["Location"].__setitem__("Type", "Number")),
        "Parameters.Location.Type",
        "must be String",
    ),
    (
        "parameter without Type",
        _with(lambda t: t["Parameters"]["Location"].pop("Type")),
        "Parameters.Location.Type",
        "is required",
    ),
    (
        "parameter with Description",
        _with(lambda t: t["Parameters"]["Location"].__setitem__("Description", "x")),
        "Parameters.Location.Description",
        "unknown parameter attribute",
    ),
    (
        "parameter Default not a string",
        _with(lambda t: t["Parameters"]["Location"].__setitem__("Default", 5)),
        "Parameters.Location.Default",
        "must be a string, got a number",
    ),
    (
        "unsupported resource type",
        _with(lambda t: t["Resources"]["thing"].__setitem__("Type", "AWS::IoT::ThingGroup")),
        "Resources.thing.Type",
        "must be one of AWS::IoT::Thing, AWS::IoT::Certificate, AWS::IoT::Policy",
    ),
    (
        "resource DependsOn",
        _with(lambda t: t["Resources"]["thing"].__setitem__("DependsOn", "policy")),
        "Resources.thing.DependsOn",
        "unknown resource attribute",
    ),
    (
        "resource Condition",
        _with(lambda t: t["Resources"]["thing"].__setitem__("Condition", "IsProd")),
        "Resources.thing.Condition",
        "Conditions are not supported",
    ),
    (
        "resource without Properties",
        _with(lambda t: t["Resources"]["policy"].pop("Properties")),
        "Resources.policy.Properties",
        "is required",
    ),
    (
        "thing property typo",
        _set_thing("ThingNam", "x"),
        "Resources.thing.Properties.ThingNam",
        "did you mean ThingName?",
    ),
    (
        "thing PackageVersions",
        _set_thing("PackageVersions", "x"),
        "Resources.thing.Properties.PackageVersions",
        "not supported by this collection",
    ),
    (
        "thing without ThingName",
        _with(lambda t: thing_props(t).pop("ThingName")),
        "Resources.thing.Properties.ThingName",
        "is required",
    ),
    (
        "literal thing name with a space",
        _set_thing("ThingName", "my thing"),
        "Resources.thing.Properties.ThingName",
        "[a-zA-Z0-9:_-]+",
    ),
    (
        "literal thing type too long",
        _set_thing("ThingTypeName", "t" * 129),
        "Resources.thing.Properties.ThingTypeName",
        "1-128 characters",
    ),
    (
        "AttributePayload as a list",
        _set_thing("AttributePayload", [{"a": "b"}]),
        "Resources.thing.Properties.AttributePayload",
        "must be an object of attribute names to values",
    ),
    (
        "AttributePayload as a function",
        _set_thing("AttributePayload", {"Ref": "Location"}),
        "Resources.thing.Properties.AttributePayload",
        "must be an object of attribute names to values",
    ),
    (
        "attribute value a number",
        _set_thing("AttributePayload", {"version": 2}),
        "Resources.thing.Properties.AttributePayload.version",
        "must be a string, got a number; quote it",
    ),
    (
        "attribute value nested object",
        _set_thing("AttributePayload", {"meta": {"a": "b"}}),
        "Resources.thing.Properties.AttributePayload.meta",
        "must be a string, got an object",
    ),
    (
        "attribute name with a space",
        _set_thing("AttributePayload", {"bad name": "x"}),
        "Resources.thing.Properties.AttributePayload.bad name",
        "attribute names must be",
    ),
    (
        "attribute value with a space",
        _set_thing("AttributePayload", {"site": "two words"}),
        "Resources.thing.Properties.AttributePayload.site",
        "attribute values must be",
    ),
    (
        "four attributes without a thing type",
        _set_thing("AttributePayload", {"a": "1", "b": "2", "c": "3", "d": "4"}),
        "Resources.thing.Properties.AttributePayload",
        "a thing without a thing type can have at most 3 attributes, got 4",
    ),
    (
        "ThingGroups as a string",
        _set_thing("ThingGroups", "sensors"),
        "Resources.thing.Properties.ThingGroups",
        "must be a list of strings, got a string",
    ),
    (
        "eleven thing groups",
        _set_thing("ThingGroups", [f"g{i}" for i in range(11)]),
        "Resources.thing.Properties.ThingGroups",
        "at most 10 groups, got 11",
    ),
    (
        "two things",
        _set_resource("thing2", {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "b"}}),
        "Resources",
        "at most one AWS::IoT::Thing, got 2",
    ),
    (
        "two certificates",
        _set_resource("certificate2", _certificate(CertificateId=HEX_B)),
        "Resources",
        "at most one AWS::IoT::Certificate, got 2",
    ),
    (
        "certificate without a source",
        _set_resource("certificate", _certificate(Status="ACTIVE")),
        "Resources.certificate.Properties",
        "exactly one of CertificateSigningRequest, CertificateId, CertificatePem is required, got none",
    ),
    (
        "certificate with two sources",
        _set_resource("certificate", _certificate(CertificateId=HEX_A, CertificateSigningRequest="csr")),
        "Resources.certificate.Properties",
        "got CertificateSigningRequest, CertificateId",
    ),
    (
        "CA certificate without CertificatePem",
        _set_resource("certificate", _certificate(CertificateId=HEX_A, CACertificatePem="ca")),
        "Resources.certificate.Properties.CACertificatePem",
        "only valid together with CertificatePem",
    ),
    (
        "certificate status ENABLED",
        _set_resource("certificate", _certificate(CertificateId=HEX_A, Status="ENABLED")),
        "Resources.certificate.Properties.Status",
        "must be one of ACTIVE, INACTIVE",
    ),
    (
        "CertificateID spelling",
        _set_resource("certificate", _certificate(CertificateID=HEX_A)),
        "Resources.certificate.Properties.CertificateID",
        "did you mean CertificateId?",
    ),
    (
        "literal certificate id not hex",
        _set_resource("certificate", _certificate(CertificateId="z" * 64)),
        "Resources.certificate.Properties.CertificateId",
        "64 hexadecimal characters",
    ),
    (
        "thing principal type",
        _set_resource("certificate", _certificate(CertificateId=HEX_A, ThingPrincipalType="SHARED")),
        "Resources.certificate.Properties.ThingPrincipalType",
        "EXCLUSIVE_THING, NON_EXCLUSIVE_THING",
    ),
    (
        "policy with name and document",
        _set_resource("policy", _policy(PolicyName="p", PolicyDocument="{}")),
        "Resources.policy.Properties",
        "exactly one of PolicyName or PolicyDocument is required, got PolicyName, PolicyDocument",
    ),
    (
        "policy with neither",
        _set_resource("policy", _policy()),
        "Resources.policy.Properties",
        "got none",
    ),
    (
        "policy document string not JSON",
        _set_resource("policy", _policy(PolicyDocument="{Version: 2012}")),
        "Resources.policy.Properties.PolicyDocument",
        "must be a JSON policy document",
    ),
    (
        "policy document string of a list",
        _set_resource("policy", _policy(PolicyDocument="[1]")),
        "Resources.policy.Properties.PolicyDocument",
        "must be a JSON object, got a list",
    ),
    (
        "policy document a number",
        _set_resource("policy", _policy(PolicyDocument=3)),
        "Resources.policy.Properties.PolicyDocument",
        "escaped JSON string or an object",
    ),
    (
        "policy name with a space",
        _set_resource("policy", _policy(PolicyName="my policy")),
        "Resources.policy.Properties.PolicyName",
        "a policy name may contain only",
    ),
    (
        "policy OverrideSettings",
        _with(lambda t: t["Resources"]["policy"].__setitem__("OverrideSettings", {})),
        "Resources.policy.OverrideSettings",
        "not available for policies",
    ),
    (
        "eleven policies on one certificate",
        _with(lambda t: [t["Resources"].__setitem__(f"p{i}", _policy(PolicyName=f"p{i}")) for i in range(10)]),
        "Resources",
        "at most 10 policies attached, got 11",
    ),
    (
        "MERGE for ThingTypeName",
        _with(lambda t: t["Resources"]["thing"].__setitem__("OverrideSettings", {"ThingTypeName": "MERGE"})),
        "Resources.thing.OverrideSettings.ThingTypeName",
        "MERGE is only valid for ThingGroups and AttributePayload",
    ),
    (
        "unknown override action",
        _with(lambda t: t["Resources"]["thing"].__setitem__("OverrideSettings", {"ThingGroups": "KEEP"})),
        "Resources.thing.OverrideSettings.ThingGroups",
        "must be one of DO_NOTHING, REPLACE, FAIL, MERGE",
    ),
    (
        "override key in enum form",
        _with(lambda t: t["Resources"]["thing"].__setitem__("OverrideSettings", {"ATTRIBUTE_PAYLOAD": "MERGE"})),
        "Resources.thing.OverrideSettings.ATTRIBUTE_PAYLOAD",
        "(use AttributePayload)",
    ),
    (
        "override for BillingGroup",
        _with(lambda t: t["Resources"]["thing"].__setitem__("OverrideSettings", {"BillingGroup": "REPLACE"})),
        "Resources.thing.OverrideSettings.BillingGroup",
        "cannot be overridden",
    ),
    (
        "certificate override other than Status",
        _with(lambda t: t["Resources"]["certificate"].__setitem__("OverrideSettings", {"CertificateId": "REPLACE"})),
        "Resources.certificate.OverrideSettings.CertificateId",
        "allowed: Status",
    ),
    (
        "MERGE for certificate Status",
        _with(lambda t: t["Resources"]["certificate"].__setitem__("OverrideSettings", {"Status": "MERGE"})),
        "Resources.certificate.OverrideSettings.Status",
        "MERGE is only valid",
    ),
    (
        "Fn::If",
        _set_thing("ThingTypeName", {"Fn::If": ["c", "a", "b"]}),
        "Resources.thing.Properties.ThingTypeName.Fn::If",
        "Fn::If is not supported in AWS IoT provisioning templates",
    ),
    (
        "Fn::GetAtt",
        _set_thing("ThingTypeName", {"Fn::GetAtt": ["thing", "Arn"]}),
        "Resources.thing.Properties.ThingTypeName.Fn::GetAtt",
        "not supported",
    ),
    (
        "Fn::ImportValue inside a list",
        _set_thing("ThingGroups", ["a", {"Fn::ImportValue": "x"}]),
        "Resources.thing.Properties.ThingGroups[1].Fn::ImportValue",
        "not supported",
    ),
    (
        "Fn::Base64 in a policy document object",
        _set_resource("policy", _policy(PolicyDocument={"Statement": [{"Resource": {"Fn::Base64": "x"}}]})),
        "Resources.policy.Properties.PolicyDocument.Statement[0].Resource.Fn::Base64",
        "not supported",
    ),
    (
        "single-colon function name",
        _set_thing("ThingTypeName", {"Fn:Join": ["", ["a"]]}),
        "Resources.thing.Properties.ThingTypeName.Fn:Join",
        "did you mean Fn::Join?",
    ),
    (
        "Condition function",
        _set_thing("ThingTypeName", {"Condition": "IsProd"}),
        "Resources.thing.Properties.ThingTypeName.Condition",
        "Conditions are not supported",
    ),
    (
        "Ref to an undeclared parameter",
        _set_thing("ThingTypeName", {"Ref": "Locaton"}),
        "Resources.thing.Properties.ThingTypeName.Ref",
        "Locaton is not a declared parameter (did you mean Location?)",
    ),
    (
        "Ref to a resource",
        _set_thing("ThingTypeName", {"Ref": "policy"}),
        "Resources.thing.Properties.ThingTypeName.Ref",
        "policy is a resource",
    ),
    (
        "Ref to an undeclared JITP parameter in a RegisterThing template",
        _set_thing("ThingTypeName", {"Ref": "AWS::IoT::Certificate::CommonName"}),
        "Resources.thing.Properties.ThingTypeName.Ref",
        "filled in by AWS only for JITP templates",
    ),
    (
        "Ref to an undocumented certificate field",
        _set_thing("ThingTypeName", {"Ref": "AWS::IoT::Certificate::Email"}),
        "Resources.thing.Properties.ThingTypeName.Ref",
        "not a parameter AWS IoT documents",
    ),
    (
        "Ref of a list",
        _set_thing("ThingTypeName", {"Ref": ["ThingName"]}),
        "Resources.thing.Properties.ThingTypeName.Ref",
        "must name a parameter as a string",
    ),
    (
        "function object with another key",
        _set_thing("ThingTypeName", {"Ref": "Location", "x": "y"}),
        "Resources.thing.Properties.ThingTypeName.Ref",
        "must be the only key",
    ),
    (
        "Fn::Join with one argument",
        _set_thing("ThingTypeName", {"Fn::Join": ["-"]}),
        "Resources.thing.Properties.ThingTypeName.Fn::Join",
        "takes a list of 2 arguments",
    ),
    (
        "Fn::Join with a function delimiter",
        _set_thing("ThingTypeName", {"Fn::Join": [{"Ref": "Location"}, ["a"]]}),
        "Resources.thing.Properties.ThingTypeName.Fn::Join[0]",
        "delimiter must be a string",
    ),
    (
        "Fn::Join of a string",
        _set_thing("ThingTypeName", {"Fn::Join": ["-", "abc"]}),
        "Resources.thing.Properties.ThingTypeName.Fn::Join[1]",
        "must be a list of strings",
    ),
    (
        "Fn::Select negative index",
        _set_thing("ThingTypeName", {"Fn::Select": [-1, ["a"]]}),
        "Resources.thing.Properties.ThingTypeName.Fn::Select[0]",
        "non-negative integer",
    ),
    (
        "Fn::Select index out of range",
        _set_thing("ThingTypeName", {"Fn::Select": ["2", ["a", "b"]]}),
        "Resources.thing.Properties.ThingTypeName.Fn::Select[0]",
        "index 2 is out of range for a list of 2",
    ),
    (
        "Fn::Split empty delimiter",
        _set_thing("ThingGroups", {"Fn::Split": ["", "a,b"]}),
        "Resources.thing.Properties.ThingGroups.Fn::Split[0]",
        "non-empty string",
    ),
    (
        "Fn::Split where a string is expected",
        _set_thing("ThingTypeName", {"Fn::Split": [",", "a,b"]}),
        "Resources.thing.Properties.ThingTypeName",
        "Fn::Split returns a list of strings, but a string is expected here",
    ),
    (
        "Fn::Join where a list is expected",
        _set_thing("ThingGroups", {"Fn::Join": [",", ["a"]]}),
        "Resources.thing.Properties.ThingGroups",
        "Fn::Join returns a string, but a list of strings is expected here",
    ),
    (
        "Fn::Sub unknown variable",
        _set_thing("ThingTypeName", {"Fn::Sub": "type-${Flavour}"}),
        "Resources.thing.Properties.ThingTypeName.Fn::Sub",
        "${Flavour}: Flavour is not a declared parameter",
    ),
    (
        "Fn::Sub policy variable",
        _set_resource("policy", _policy(PolicyDocument={"Fn::Sub": '{"Resource": "${iot:ClientId}"}'})),
        "Resources.policy.Properties.PolicyDocument.Fn::Sub",
        "write ${!iot:ClientId} inside Fn::Sub",
    ),
    (
        "Fn::Sub resource attribute",
        _set_thing("ThingTypeName", {"Fn::Sub": "${thing.Arn}"}),
        "Resources.thing.Properties.ThingTypeName.Fn::Sub",
        "resource attributes are not supported",
    ),
    (
        "Fn::Sub variables not an object",
        _set_thing("ThingTypeName", {"Fn::Sub": ["${a}", ["a"]]}),
        "Resources.thing.Properties.ThingTypeName.Fn::Sub[1]",
        "the variables must be an object",
    ),
    (
        "Fn::FindInMap of an unknown mapping",
        _set_thing("ThingTypeName", {"Fn::FindInMap": ["Types", "a", "b"]}),
        "Resources.thing.Properties.ThingTypeName.Fn::FindInMap[0]",
        "no mapping named Types",
    ),
    (
        "Fn::FindInMap of an unknown second key",
        _with(
            lambda t: (
                t.__setitem__("Mappings", {"Types": {"a": {"b": "type-b"}}}),
                thing_props(t).__setitem__("ThingTypeName", {"Fn::FindInMap": ["Types", "a", "c"]}),
            )
        ),
        "Resources.thing.Properties.ThingTypeName.Fn::FindInMap[2]",
        "no key c in Mappings.Types.a",
    ),
    (
        "Fn::FindInMap with two keys",
        _set_thing("ThingTypeName", {"Fn::FindInMap": ["Types", "a"]}),
        "Resources.thing.Properties.ThingTypeName.Fn::FindInMap",
        "takes a list of 3 arguments",
    ),
    (
        "function inside Mappings",
        _with(lambda t: t.__setitem__("Mappings", {"Types": {"a": {"b": {"Ref": "Location"}}}})),
        "Mappings.Types.a.b",
        "Mappings cannot contain functions",
    ),
    (
        "Mappings with one level",
        _with(lambda t: t.__setitem__("Mappings", {"Types": {"a": "b"}})),
        "Mappings.Types.a",
        "two levels of keys",
    ),
    (
        "Mappings leaf a number",
        _with(lambda t: t.__setitem__("Mappings", {"Types": {"a": {"b": 1}}})),
        "Mappings.Types.a.b",
        "strings or lists of strings",
    ),
    (
        "DeviceConfiguration nested object",
        _with(lambda t: t.__setitem__("DeviceConfiguration", {"wifi": {"ssid": "x"}})),
        "DeviceConfiguration.wifi",
        "does not support nested objects",
    ),
    (
        "DeviceConfiguration number",
        _with(lambda t: t.__setitem__("DeviceConfiguration", {"port": 8883})),
        "DeviceConfiguration.port",
        "must be a string",
    ),
    (
        "non-string key",
        _with(lambda t: thing_props(t).__setitem__(1, "x")),
        "Resources.thing.Properties.1",
        "keys must be strings",
    ),
    (
        "value that is not JSON",
        _set_thing("ThingTypeName", datetime.date(2024, 1, 1)),
        "Resources.thing.Properties.ThingTypeName",
        "unsupported value of type date",
    ),
]


@pytest.mark.parametrize("build, path, fragment", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_template_is_refused_with_its_path(build, path, fragment):
    # As JSON text where it can be (numbers are refused there; a body given as data has them made text).
    body = build()
    if _json_safe(body):
        body = json.dumps(body)
    expect_error(lambda: te.parse(body), path, fragment)


def _json_safe(value):
    """Whether JSON text says the same as the data (no non-string key, nothing JSON cannot hold)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_safe(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_numbers_in_a_body_given_as_data_become_text():
    # Ansible keeps "{{ item }}" holding 5 as the number 5: the thing module coerces it, so does the engine (issue 10).
    template = base_template()
    template["Parameters"]["Location"]["Default"] = 5
    thing_props(template)["AttributePayload"] = {"version": 2, "ratio": 1.5, "site": {"Ref": "Location"}}
    rendered = te.render(te.parse(template), {"ThingName": "dev-1", "CertificateId": HEX_A})
    assert rendered["thing"]["attributes"] == {"version": "2", "ratio": "1.5", "site": "5"}
    # A boolean is not taken for text: it was probably meant as something else.
    thing_props(template)["AttributePayload"] = {"enabled": True}
    expect_error(lambda: te.parse(template), "Resources.thing.Properties.AttributePayload.enabled", "quote it")


def test_base_template_is_valid():
    # The malformed cases above mutate this template: it must be valid unchanged, or they prove nothing.
    assert te.parse(base_template())
    assert render_base()["thing"]["name"] == "dev-1"


# === validate_for ==============================================================================================


def test_jitp_template_cannot_use_a_csr():
    template = load_fixture("bulk_csr.json")["template"]
    expect_error(
        lambda: te.parse(template, "JITP"),
        "Resources.certificate.Properties.CertificateSigningRequest",
        "a JITP template can name its certificate only by CertificateId",
    )


def test_fleet_template_cannot_use_a_certificate_pem():
    template = base_template()
    template["Resources"]["certificate"] = _certificate(CertificatePem="pem", CACertificatePem="ca")
    template["Parameters"].pop("CertificateId")
    expect_error(
        lambda: te.validate_for(te.parse(template), "FLEET_PROVISIONING"),
        "Resources.certificate.Properties.CertificatePem",
        "a fleet provisioning template can name its certificate only by CertificateId",
    )


def test_jitp_template_can_only_declare_certificate_parameters():
    fixture = load_fixture("jitp.json")
    body = json.loads(fixture["registration_config"]["templateBody"])
    body["Parameters"]["SiteName"] = {"Type": "String", "Default": "north"}
    expect_error(lambda: te.parse(body, "JITP"), "Parameters.SiteName", "a JITP template can only use the parameters")


def test_unknown_template_type():
    expect_error(lambda: te.parse(base_template(), "BULK"), "template_type", "FLEET_PROVISIONING, JITP")


def test_jitp_pseudo_parameters_may_be_referenced_without_declaration():
    template = {
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}},
            },
            "certificate": _certificate(CertificateId={"Ref": "AWS::IoT::Certificate::Id"}),
        }
    }
    parsed = te.parse(template, "JITP")
    rendered = te.render(parsed, {"AWS::IoT::Certificate::CommonName": "cn-1", "AWS::IoT::Certificate::Id": HEX_A})
    assert rendered["thing"]["name"] == "cn-1"
    assert rendered["certificate"]["certificate_id"] == HEX_A


def test_jitp_certificate_without_a_referenced_field_fails_to_render():
    # JITP page: a declared parameter the certificate lacks (e.g. Country) makes provisioning fail.
    fixture = load_fixture("jitp.json")
    parameters = dict(fixture["parameters"])
    parameters.pop("AWS::IoT::Certificate::Country")
    expect_error(
        lambda: te.render(te.parse(fixture_body(fixture), "JITP"), parameters),
        "Parameters.AWS::IoT::Certificate::Country",
        "no value given and no Default",
    )


# === render: parameters ========================================================================================


def test_missing_parameter_without_default_names_it():
    error = expect_error(lambda: te.render(base_template(), {"ThingName": "dev-1"}), "Parameters.CertificateId", "")
    assert str(error) == "Parameters.CertificateId: no value given and no Default"


def test_default_is_used_and_a_given_value_wins():
    assert render_base()["thing"]["attributes"] == {"site": "WA"}
    assert render_base(Location="OR")["thing"]["attributes"] == {"site": "OR"}


def test_undeclared_parameter_is_refused_unless_allowed():
    expect_error(
        lambda: render_base(Locaton="OR"), "parameters.Locaton", "is not declared in the template's Parameters"
    )
    expect_error(lambda: render_base(Locaton="OR"), "parameters.Locaton", "(did you mean Location?)")
    rendered = te.render(
        base_template(), {"ThingName": "dev-1", "CertificateId": HEX_A, "Extra": "x"}, allow_extra=True
    )
    assert rendered["thing"]["name"] == "dev-1"


def test_parameter_values_must_be_strings():
    expect_error(lambda: render_base(Location=5), "parameters.Location", "must be a string")


def test_parameter_value_limit_is_4096():
    template = base_template()
    template["Parameters"]["Note"] = {"Type": "String"}  # declared, unused: only RegisterThing's limit applies
    assert render_base(template, Note="a" * 4096)
    expect_error(lambda: render_base(template, Note="a" * 4097), "parameters.Note", "at most 4096 characters, got 4097")


def test_parameter_key_limit_is_2048():
    template = base_template()
    long_name = "P" * 2049
    expect_error(
        lambda: te.render(template, {"ThingName": "d", "CertificateId": HEX_A, long_name: "x"}, allow_extra=True),
        "parameters." + long_name,
        "at most 2048 characters",
    )


def test_rendered_values_follow_aws_name_rules():
    expect_error(lambda: render_base(ThingName="has space"), "Resources.thing.Properties.ThingName", "thing name")
    expect_error(
        lambda: render_base(Location="a b"), "Resources.thing.Properties.AttributePayload.site", "attribute values"
    )
    expect_error(
        lambda: render_base(CertificateId="0x" + "a" * 62),
        "Resources.certificate.Properties.CertificateId",
        "64 hexadecimal characters",
    )


def test_certificate_id_is_lowercased():
    assert render_base(CertificateId="ABCDEF" + "0" * 58)["certificate"]["certificate_id"] == "abcdef" + "0" * 58


# === render: functions =========================================================================================


def test_fn_sub_string_form_and_escape():
    template = base_template()
    thing_props(template)["ThingTypeName"] = {"Fn::Sub": "type-${Location}"}
    template["DeviceConfiguration"] = {"command": {"Fn::Sub": "run ${ThingName} ${!Literal}"}}
    rendered = render_base(template)
    assert rendered["thing"]["thing_type"] == "type-WA"
    assert rendered["device_configuration"] == {"command": "run dev-1 ${Literal}"}


def test_fn_sub_with_variables_map_of_functions():
    template = base_template()
    thing_props(template)["ThingTypeName"] = {
        "Fn::Sub": ["${Prefix}_${Location}", {"Prefix": {"Fn::Join": ["", ["t", "1"]]}}]
    }
    assert render_base(template)["thing"]["thing_type"] == "t1_WA"


def test_fn_sub_keeps_policy_variables_escaped_with_bang():
    template = base_template()
    template["Resources"]["policy"] = _policy(
        PolicyDocument={
            "Fn::Sub": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect",'
            '"Resource":"arn:aws:iot:us-east-1:123456789012:client/${!iot:ClientId}-${ThingName}"}]}'
        }
    )
    document = render_base(template)["policies"][0]["document"]
    assert document["Statement"][0]["Resource"] == "arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}-dev-1"


def test_fn_select_of_fn_split_with_string_index():
    template = base_template()
    template["Parameters"]["Serial"] = {"Type": "String"}
    thing_props(template)["ThingTypeName"] = {"Fn::Select": ["1", {"Fn::Split": ["-", {"Ref": "Serial"}]}]}
    assert render_base(template, Serial="acme-model7-0042")["thing"]["thing_type"] == "model7"


def test_fn_select_out_of_range_at_render_time():
    template = base_template()
    template["Parameters"]["Serial"] = {"Type": "String"}
    thing_props(template)["ThingTypeName"] = {"Fn::Select": [3, {"Fn::Split": ["-", {"Ref": "Serial"}]}]}
    expect_error(
        lambda: render_base(template, Serial="a-b"),
        "Resources.thing.Properties.ThingTypeName.Fn::Select[0]",
        "index 3 is out of range for a list of 2",
    )


def test_thing_groups_from_fn_split_are_deduplicated():
    template = base_template()
    template["Parameters"]["Groups"] = {"Type": "String"}
    thing_props(template)["ThingGroups"] = {"Fn::Split": [",", {"Ref": "Groups"}]}
    assert render_base(template, Groups="a,b,a")["thing"]["thing_groups"] == ["a", "b"]


def test_fn_join_of_fn_split():
    template = base_template()
    template["Parameters"]["Serial"] = {"Type": "String"}
    thing_props(template)["ThingTypeName"] = {"Fn::Join": ["_", {"Fn::Split": ["-", {"Ref": "Serial"}]}]}
    assert render_base(template, Serial="a-b-c")["thing"]["thing_type"] == "a_b_c"


def test_fn_find_in_map_with_a_ref_key_missing_at_render_time():
    template = base_template()
    template["Mappings"] = {"Types": {"WA": {"name": "west"}}}
    thing_props(template)["ThingTypeName"] = {"Fn::FindInMap": ["Types", {"Ref": "Location"}, "name"]}
    assert render_base(template)["thing"]["thing_type"] == "west"
    expect_error(
        lambda: render_base(template, Location="TX"),
        "Resources.thing.Properties.ThingTypeName.Fn::FindInMap",
        "no key 'TX' in Mappings.Types",
    )


def test_fn_find_in_map_can_return_a_list_of_groups():
    template = base_template()
    template["Mappings"] = {"Groups": {"WA": {"list": ["west", "coastal"]}}}
    thing_props(template)["ThingGroups"] = {"Fn::FindInMap": ["Groups", {"Ref": "Location"}, "list"]}
    assert render_base(template)["thing"]["thing_groups"] == ["west", "coastal"]


def test_fn_find_in_map_list_where_a_string_is_needed_fails_at_render():
    template = base_template()
    template["Mappings"] = {"Groups": {"WA": {"list": ["west"]}}}
    thing_props(template)["ThingTypeName"] = {"Fn::FindInMap": ["Groups", "WA", "list"]}
    expect_error(
        lambda: render_base(template),
        "Resources.thing.Properties.ThingTypeName",
        "must evaluate to a string, got a list",
    )


def test_policy_document_object_with_functions_and_from_a_joined_string():
    template = base_template()
    template["Resources"]["policy"] = _policy(
        PolicyDocument={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": {"Fn::Sub": "topic/${ThingName}"}}],
        }
    )
    template["Resources"]["policy2"] = _policy(
        PolicyDocument={
            "Fn::Join": ["", ['{"Version":"2012-10-17","Statement":[{"Sid":"', {"Ref": "ThingName"}, '"}]}']]
        }
    )
    policies = render_base(template)["policies"]
    assert policies[0]["document"]["Statement"][0]["Resource"] == "topic/dev-1"
    assert policies[1] == {
        "logical_id": "policy2",
        "name": None,
        "document": {"Version": "2012-10-17", "Statement": [{"Sid": "dev-1"}]},
    }


def test_policy_document_over_2048_characters_without_whitespace():
    template = base_template()
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": ""}]}
    overhead = len(json.dumps(document, separators=(",", ":")))
    document["Statement"][0]["Resource"] = "x" * (2048 - overhead)
    template["Resources"]["policy"] = _policy(PolicyDocument=json.dumps(document, indent=4))
    assert render_base(template)["policies"][0]["document"] == document
    document["Statement"][0]["Resource"] += "x"
    template["Resources"]["policy"] = _policy(PolicyDocument=json.dumps(document, indent=4))
    expect_error(
        lambda: te.parse(template), "Resources.policy.Properties.PolicyDocument", "at most 2048 characters, got 2049"
    )


def test_status_is_case_insensitive_and_defaults_to_active():
    template = base_template()
    template["Resources"]["certificate"]["Properties"]["Status"] = "inactive"
    assert render_base(template)["certificate"]["status"] == "INACTIVE"
    assert render_base()["certificate"]["status"] == "ACTIVE"
    assert render_base()["certificate"]["status_set"] is False


def test_device_configuration_renders_strings_only():
    template = base_template()
    template["DeviceConfiguration"] = {"region": {"Fn::Sub": "${Location}-1"}, "fixed": "x"}
    assert render_base(template)["device_configuration"] == {"region": "WA-1", "fixed": "x"}


def test_thing_principal_type_is_rendered():
    template = base_template()
    template["Resources"]["certificate"]["Properties"]["ThingPrincipalType"] = "EXCLUSIVE_THING"
    assert render_base(template)["certificate"]["thing_principal_type"] == "EXCLUSIVE_THING"


def test_render_does_not_change_the_parsed_template():
    parsed = te.parse(base_template())
    before = copy.deepcopy(parsed.body)
    render_base(parsed)
    assert parsed.body == before


# === certificates: CSR, PEM, fingerprints ======================================================================


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_fingerprint_of_csr_certificate_and_public_key_agree_with_cryptography(kind):
    key = make_key(kind)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    expected = spki_sha256(key)
    assert te.public_key_fingerprint(make_csr(key)) == expected
    assert te.public_key_fingerprint(make_certificate(key)) == expected
    assert te.public_key_fingerprint(public_pem) == expected


def test_certificate_id_is_sha256_of_der():
    pem = make_certificate(make_key())
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    assert te.certificate_id_from_pem(pem) == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    "text",
    [
        "csr-text",
        "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQA=\n-----END CERTIFICATE REQUEST-----\n",
    ],
    ids=["no PEM", "bad base64", "not a CSR structure"],
)
def test_unreadable_csr_is_a_template_error(text):
    template = csr_template()
    with pytest.raises(te.TemplateError) as info:
        te.render(template, {"ThingName": "d", "CSR": text})
    assert info.value.path == "Resources.certificate.Properties.CertificateSigningRequest"


def test_csr_longer_than_4096_characters_is_refused():
    # A parameter cannot exceed 4096 characters, but a function can build a longer CSR.
    template = csr_template()
    template["Resources"]["certificate"]["Properties"]["CertificateSigningRequest"] = {
        "Fn::Join": ["", [{"Ref": "CSR"}, {"Ref": "CSR"}]]
    }
    csr = make_csr(make_key())
    padded = csr + "\n" * (2049 - len(csr))
    expect_error(
        lambda: te.render(template, {"ThingName": "d", "CSR": padded}),
        "Resources.certificate.Properties.CertificateSigningRequest",
        "at most 4096 characters, got 4098",
    )


def test_certificate_pem_source_computes_id_and_fingerprint():
    key = make_key()
    pem = make_certificate(key)
    template = base_template()
    template["Parameters"] = {"ThingName": {"Type": "String"}, "Pem": {"Type": "String"}}
    thing_props(template)["AttributePayload"] = {}
    template["Resources"]["certificate"] = _certificate(CertificatePem={"Ref": "Pem"}, CACertificatePem="ca-pem")
    certificate = te.render(template, {"ThingName": "d", "Pem": pem})["certificate"]
    assert certificate["source"] == "certificate_pem"
    assert certificate["certificate_id"] == te.certificate_id_from_pem(pem)
    assert certificate["public_key_fingerprint"] == spki_sha256(key)
    assert certificate["ca_certificate_pem"] == "ca-pem"


# === plan: OverrideSettings and limits =========================================================================


def rendered_thing(**overrides):
    template = base_template()
    thing = template["Resources"]["thing"]
    thing["Properties"]["ThingTypeName"] = "sensor"
    thing["OverrideSettings"] = overrides
    return render_base(template)


def existing(**fields):
    thing = {
        "thing_name": "dev-1",
        "thing_type_name": "sensor",
        "attributes": {"site": "WA"},
        "billing_group_name": None,
        "thing_groups": ["sensors"],
    }
    thing.update(fields)
    return {"thing": thing}


def thing_action(rendered, current):
    return te.plan(rendered, current)[0]


def test_replace_attributes_removes_unlisted_ones():
    action = thing_action(rendered_thing(AttributePayload="REPLACE"), existing(attributes={"site": "WA", "old": "1"}))
    assert action["action"] == "update"
    assert action["changes"] == {"attributes": {"before": {"site": "WA", "old": "1"}, "after": {"site": "WA"}}}
    assert action["after"]["attributes"] == {"site": "WA"}


def test_merge_attributes_keeps_unlisted_ones():
    action = thing_action(rendered_thing(AttributePayload="MERGE"), existing(attributes={"site": "OR", "old": "1"}))
    assert action["changes"]["attributes"]["after"] == {"site": "WA", "old": "1"}


def test_merge_with_nothing_new_is_no_change():
    action = thing_action(rendered_thing(AttributePayload="MERGE"), existing(attributes={"site": "WA", "old": "1"}))
    assert action["action"] == "none" and action["changes"] == {}


def test_fail_override_fails_only_when_the_property_would_change():
    rendered = rendered_thing(AttributePayload="FAIL")
    assert thing_action(rendered, existing())["action"] == "none"
    action = thing_action(rendered, existing(attributes={"site": "OR"}))
    assert action["action"] == "fail"
    assert "AttributePayload would change and its OverrideSettings is FAIL" in action["reason"]
    failures = te.plan_failures(te.plan(rendered, existing(attributes={"site": "OR"})))
    # The snapshot has no certificate and no policy, which fail too (CertificateId and PolicyName must exist).
    assert failures == [
        "thing thing: AttributePayload would change and its OverrideSettings is FAIL",
        f"certificate certificate: certificate {HEX_A} does not exist; CertificateId needs an existing certificate",
        "policy policy: policy DevicePolicy does not exist; a policy named without a document must already exist "
        "(list it in declared_resources.policies when an earlier task of the play creates it)",
    ]


def test_a_declared_policy_is_planned_as_made_by_an_earlier_task():
    # Check mode of a play whose earlier task creates the policy: planned, not a failure (issue 10).
    rendered = te.render(te.parse(base_template()), {"ThingName": "t", "CertificateId": HEX_A})
    actions = te.plan(rendered, te.empty_snapshot(), {"DevicePolicy"})
    policy = next(a for a in actions if a["resource"] == "policy")
    assert policy["action"] == "none"
    assert "an earlier task of the play creates it" in policy["reason"]
    assert next(a for a in actions if a["resource"] == "policy_attachment")["action"] == "create"
    assert not [f for f in te.plan_failures(actions) if f.startswith("policy")]
    assert [f for f in te.plan_failures(te.plan(rendered, te.empty_snapshot(), {"Other"})) if f.startswith("policy")]


def test_replace_groups_lists_additions_and_removals():
    action = thing_action(rendered_thing(ThingGroups="REPLACE"), existing(thing_groups=["legacy"]))
    assert action["changes"]["thing_groups"] == {
        "before": ["legacy"],
        "after": ["sensors"],
        "add": ["sensors"],
        "remove": ["legacy"],
    }


def test_merge_groups_only_adds():
    action = thing_action(rendered_thing(ThingGroups="MERGE"), existing(thing_groups=["legacy"]))
    assert action["changes"]["thing_groups"]["add"] == ["sensors"]
    assert action["changes"]["thing_groups"]["remove"] == []
    assert action["after"]["thing_groups"] == ["legacy", "sensors"]


def test_thing_type_replace_and_do_nothing():
    assert thing_action(rendered_thing(ThingTypeName="REPLACE"), existing(thing_type_name="old"))["changes"] == {
        "thing_type_name": {"before": "old", "after": "sensor"}
    }
    action = thing_action(rendered_thing(), existing(thing_type_name="old"))
    assert action["action"] == "none"
    assert action["ignored"]["thing_type_name"]["override"] == "DO_NOTHING"


def test_merged_attributes_over_the_limit_fail():
    template = base_template()
    template["Resources"]["thing"]["OverrideSettings"] = {"AttributePayload": "MERGE"}
    current = existing(thing_type_name=None, attributes={"a": "1", "b": "2", "c": "3"})
    action = thing_action(render_base(template), current)
    assert action["action"] == "fail"
    assert "a thing without a thing type can have at most 3 attributes, got 4" in action["reason"]


def test_merged_groups_over_the_limit_fail():
    action = thing_action(rendered_thing(ThingGroups="MERGE"), existing(thing_groups=[f"g{i}" for i in range(10)]))
    assert action["action"] == "fail"
    assert "at most 10 groups, got 11" in action["reason"]


def test_unset_properties_are_left_alone_even_with_replace():
    template = base_template()
    del thing_props(template)["AttributePayload"]
    del thing_props(template)["ThingGroups"]
    template["Resources"]["thing"]["OverrideSettings"] = {"AttributePayload": "REPLACE", "ThingGroups": "REPLACE"}
    action = thing_action(render_base(template), existing(attributes={"x": "1"}, thing_groups=["g"]))
    assert action["action"] == "none" and action["changes"] == {} and "ignored" not in action


def _with_certificate_status(status, override=None):
    template = base_template()
    template["Resources"]["certificate"]["Properties"]["Status"] = status
    if override:
        template["Resources"]["certificate"]["OverrideSettings"] = {"Status": override}
    return render_base(template)


def _certificate_state(status):
    return {"certificate": {"certificate_id": HEX_A, "status": status, "attached_policies": []}}


def test_certificate_status_override_replace_fail_and_revoked():
    rendered = _with_certificate_status("ACTIVE", "REPLACE")
    action = te.plan(rendered, _certificate_state("INACTIVE"))[1]
    assert action["action"] == "update"
    assert action["changes"] == {"status": {"before": "INACTIVE", "after": "ACTIVE"}}
    assert te.plan(_with_certificate_status("ACTIVE", "FAIL"), _certificate_state("INACTIVE"))[1]["action"] == "fail"
    revoked = te.plan(rendered, _certificate_state("REVOKED"))[1]
    assert revoked["action"] == "fail" and "REVOKED" in revoked["reason"]
    assert te.plan(_with_certificate_status("ACTIVE"), _certificate_state("INACTIVE"))[1]["action"] == "none"


def test_certificate_pem_create_then_none():
    template = base_template()
    template["Parameters"] = {"ThingName": {"Type": "String"}, "Pem": {"Type": "String"}}
    thing_props(template)["AttributePayload"] = {}
    template["Resources"]["certificate"] = _certificate(CertificatePem={"Ref": "Pem"})
    pem = make_certificate(make_key())
    rendered = te.render(template, {"ThingName": "dev-1", "Pem": pem})
    certificate_id = te.certificate_id_from_pem(pem)
    created = te.plan(rendered, None)[1]
    assert created["action"] == "create" and created["certificate_id"] == certificate_id
    state = {"certificate": {"certificate_id": certificate_id, "status": "ACTIVE", "attached_policies": []}}
    assert te.plan(rendered, state)[1]["action"] == "none"


def test_csr_matching_certificate_with_other_status_is_updated_when_replace():
    key = make_key()
    template = csr_template()
    template["Resources"]["certificate"]["Properties"]["Status"] = "ACTIVE"
    template["Resources"]["certificate"]["OverrideSettings"] = {"Status": "REPLACE"}
    rendered = te.render(template, {"ThingName": "dev-1", "CSR": make_csr(key)})
    state = existing()
    state["principals"] = [
        {
            "principal": f"{ARN}:cert/{HEX_A}",
            "certificate_id": HEX_A,
            "status": "ACTIVE",
            "public_key_fingerprint": "0",
        },
        {
            "principal": f"{ARN}:cert/{HEX_B}",
            "certificate_id": HEX_B,
            "status": "INACTIVE",
            "public_key_fingerprint": spki_sha256(key),
        },
    ]
    action = te.plan(rendered, state)[1]
    assert action["action"] == "update" and action["certificate_id"] == HEX_B
    assert action["changes"] == {"status": {"before": "INACTIVE", "after": "ACTIVE"}}


def test_named_policy_not_attached_and_document_policy_that_differs():
    template = base_template()
    template["Resources"]["policy2"] = _policy(PolicyDocument={"Version": "2012-10-17", "Statement": []})
    rendered = render_base(template)
    state = {
        "certificate": {"certificate_id": HEX_A, "status": "ACTIVE", "attached_policies": ["Other"]},
        "policies": {
            "policy": {"policy_name": "DevicePolicy", "policy_document": {}},
            "policy2": {"policy_name": "Other", "policy_document": {"Version": "2012-10-17", "Statement": [{}]}},
        },
    }
    by_key = {(a["resource"], a["logical_id"]): a["action"] for a in te.plan(rendered, state)}
    assert by_key[("policy", "policy")] == "none"
    assert by_key[("policy_attachment", "policy")] == "create"
    assert by_key[("policy", "policy2")] == "create"
    assert by_key[("policy_attachment", "policy2")] == "create"


def test_template_with_only_a_thing_plans_only_the_thing():
    rendered = te.render({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "solo"}}}})
    assert [(a["resource"], a["action"]) for a in te.plan(rendered)] == [("thing", "create")]


def test_plan_does_not_change_its_inputs():
    rendered = rendered_thing(AttributePayload="MERGE", ThingGroups="MERGE")
    current = existing(attributes={"old": "1"}, thing_groups=["legacy"])
    snapshot = (copy.deepcopy(rendered), copy.deepcopy(current))
    te.plan(rendered, current)
    assert (rendered, current) == snapshot


def test_plan_is_empty():
    assert te.plan_is_empty([])
    assert not te.plan_is_empty([{"action": "none"}, {"action": "fail"}])


def test_normalise_policy_document_equates_equivalent_forms():
    # The engine compares policies exactly as the policy module does (policy_documents.normalize_document).
    compact = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":["a","b"]}}'
    expanded = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["a", "b"]}],
    }
    assert te.normalise_policy_document(compact) == te.normalise_policy_document(expanded)
    assert te.normalise_policy_document(expanded) != te.normalise_policy_document({"Version": "2012-10-17"})


# === read_current_state ========================================================================================


@pytest.fixture
def iot_client():
    return boto3.client("iot", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")


def not_found(stubber, method):
    stubber.add_client_error(method, service_error_code="ResourceNotFoundException", http_status_code=404)


def test_reader_with_nothing_in_the_account(iot_client):
    rendered = render_base()
    with Stubber(iot_client) as stub:
        not_found(stub, "describe_thing")
        not_found(stub, "describe_certificate")
        not_found(stub, "get_policy")
        state = te.read_current_state(iot_client, rendered)
        stub.assert_no_pending_responses()
    assert state == {"thing": None, "principals": [], "certificate": None, "policies": {"policy": None}}
    assert [a["action"] for a in te.plan(rendered, state)] == ["create", "fail", "create", "fail", "create"]


def test_reader_finds_the_csr_certificate_by_public_key(iot_client):
    key = make_key()
    certificate_pem = make_certificate(key)
    other_pem = make_certificate(make_key(), "other")
    fixture = load_fixture("bulk_csr.json")
    template = fixture["template"]
    rendered = te.render(template, {"ThingName": "foo", "SerialNumber": "123", "CSR": make_csr(key)})
    document = json.dumps(fixture["rendered"]["policies"][0]["document"])
    with Stubber(iot_client) as stub:
        stub.add_response(
            "describe_thing",
            {
                "thingName": "foo",
                "thingArn": f"{ARN}:thing/foo",
                "thingTypeName": "lightBulb-versionA",
                "attributes": {"version": "v1", "serialNumber": "123"},
                "version": 3,
            },
            {"thingName": "foo"},
        )
        stub.add_response(
            "list_thing_groups_for_thing",
            {"thingGroups": [{"groupName": "v1-lightbulbs"}, {"groupName": "WA"}]},
            {"thingName": "foo"},
        )
        stub.add_response(
            "list_thing_principals",
            {"principals": [f"{ARN}:cert/{HEX_B}", f"{ARN}:cert/{HEX_A}"]},
            {"thingName": "foo"},
        )
        for certificate_id, pem in ((HEX_B, other_pem), (HEX_A, certificate_pem)):
            stub.add_response(
                "describe_certificate",
                {
                    "certificateDescription": {
                        "certificateId": certificate_id,
                        "certificateArn": f"{ARN}:cert/{certificate_id}",
                        "status": "ACTIVE",
                        "certificatePem": pem,
                    }
                },
                {"certificateId": certificate_id},
            )
        stub.add_response(
            "describe_certificate",
            {
                "certificateDescription": {
                    "certificateId": HEX_A,
                    "certificateArn": f"{ARN}:cert/{HEX_A}",
                    "status": "ACTIVE",
                    "certificatePem": certificate_pem,
                }
            },
            {"certificateId": HEX_A},
        )
        stub.add_response(
            "list_attached_policies",
            {"policies": [{"policyName": "HashName", "policyArn": f"{ARN}:policy/HashName"}]},
            {"target": f"{ARN}:cert/{HEX_A}"},
        )
        stub.add_response(
            "get_policy",
            {"policyName": "HashName", "policyArn": f"{ARN}:policy/HashName", "policyDocument": document},
            {"policyName": "HashName"},
        )
        state = te.read_current_state(iot_client, rendered)
        stub.assert_no_pending_responses()
    assert state["thing"]["thing_groups"] == ["WA", "v1-lightbulbs"]
    assert state["certificate"]["certificate_id"] == HEX_A
    assert state["certificate"]["attached_policies"] == ["HashName"]
    assert state["policies"]["policy"]["policy_name"] == "HashName"
    assert te.plan_is_empty(te.plan(rendered, state))


def test_reader_lets_other_errors_through(iot_client):
    with Stubber(iot_client) as stub:
        stub.add_client_error("describe_thing", service_error_code="UnauthorizedException", http_status_code=401)
        with pytest.raises(ClientError) as info:
            te.read_current_state(iot_client, render_base())
    assert info.value.response["Error"]["Code"] == "UnauthorizedException"


def test_reader_skips_non_certificate_principals(iot_client):
    with Stubber(iot_client) as stub:
        stub.add_response("describe_thing", {"thingName": "dev-1"}, {"thingName": "dev-1"})
        stub.add_response("list_thing_groups_for_thing", {"thingGroups": []}, {"thingName": "dev-1"})
        stub.add_response("list_thing_principals", {"principals": ["us-east-1:cognito-id"]}, {"thingName": "dev-1"})
        state = te.read_current_state(iot_client, {"thing": {"name": "dev-1"}, "certificate": None, "policies": []})
        stub.assert_no_pending_responses()
    assert state["principals"] == [{"principal": "us-east-1:cognito-id", "certificate_id": None}]


def test_reader_against_moto_in_process(monkeypatch):
    """End to end through moto's in-memory backend (no network): write state with moto, read it, plan nothing."""
    from moto import mock_aws
    from moto.settings import default_user_config

    # AWS computes certificate ids from the DER bytes; moto does so only with this switch.
    monkeypatch.setitem(default_user_config, "iot", {"use_valid_cert": True})
    fixture = load_fixture("register_thing_cli.json")
    key = make_key()
    pem = make_certificate(key)
    with mock_aws():
        client = boto3.client("iot", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        certificate = client.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
        assert certificate["certificateId"] == te.certificate_id_from_pem(pem)
        parameters = {"ThingName": "Register-thing-trial-1", "AWS::IoT::Certificate::Id": certificate["certificateId"]}
        rendered = te.render(fixture["template_body"], parameters)
        client.create_thing_type(thingTypeName="VirtualThings")
        client.create_policy(
            policyName="MyIotPolicy",
            policyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
            ),
        )
        before = te.plan(rendered, te.read_current_state(client, rendered))
        assert [a["action"] for a in before] == ["create", "none", "create", "none", "create"]
        client.create_thing(thingName="Register-thing-trial-1", thingTypeName="VirtualThings")
        client.attach_thing_principal(thingName="Register-thing-trial-1", principal=certificate["certificateArn"])
        client.attach_policy(policyName="MyIotPolicy", target=certificate["certificateArn"])
        state = te.read_current_state(client, rendered)
    assert state["principals"][0]["public_key_fingerprint"] == spki_sha256(key)
    assert te.plan_is_empty(te.plan(rendered, state)), te.plan(rendered, state)
