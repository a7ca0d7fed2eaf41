"""The data plane's policy evaluator (policy_eval.py) on its own: no endpoint, milliseconds.

Each case is a statement of the AWS IoT developer guide ("AWS IoT Core policies", "Thing policy variables",
"X.509 certificate policy variables"); the connection tests in test_dataplane.py show the same evaluator
through a real device.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from policy_eval import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, Context, Thing, Unsupported, evaluate

ARN = "arn:aws:iot:us-east-1:123456789012"
THING = Thing("dev-1", "sensor", {"line": "a", "floor": "3"})
ATTACHED = Context(client_id="dev-1", thing=THING)
DETACHED = Context(client_id="dev-1", thing=None)


def policy(*statements: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("p", {"Version": "2012-10-17", "Statement": list(statements)})]


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def answer(policies: list[tuple[str, Any]], action: str, resource: str, context: Context = ATTACHED) -> str:
    return evaluate(policies, action, f"{ARN}:{resource}", context).answer


# The least-privilege device policy the roles ship (roles/jitp, roles/bulk README), written out.
SHIPPED = policy(
    allow(
        "iot:Connect",
        f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
        Condition={"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
    ),
    allow(["iot:Publish", "iot:Receive"], f"{ARN}:topic/devices/${{iot:Connection.Thing.ThingName}}/*"),
    allow("iot:Subscribe", f"{ARN}:topicfilter/devices/${{iot:Connection.Thing.ThingName}}/*"),
)


def test_shipped_policy_allows_the_device_and_denies_its_neighbour() -> None:
    assert answer(SHIPPED, "iot:Connect", "client/dev-1") == ALLOWED
    assert answer(SHIPPED, "iot:Connect", "client/dev-2") == IMPLICIT_DENY
    assert answer(SHIPPED, "iot:Publish", "topic/devices/dev-1/telemetry") == ALLOWED
    assert answer(SHIPPED, "iot:Receive", "topic/devices/dev-1/a/b") == ALLOWED
    assert answer(SHIPPED, "iot:Publish", "topic/devices/dev-2/telemetry") == IMPLICIT_DENY
    assert answer(SHIPPED, "iot:Subscribe", "topicfilter/devices/dev-1/#") == ALLOWED
    assert answer(SHIPPED, "iot:Subscribe", "topicfilter/devices/+/telemetry") == IMPLICIT_DENY
    assert answer(SHIPPED, "iot:Subscribe", "topic/devices/dev-1/x") == IMPLICIT_DENY  # topic is not topicfilter


def test_thing_variables_do_not_resolve_without_an_attached_thing() -> None:
    # AWS: a thing variable of a certificate not attached to the thing is not resolved -> access denied.
    assert answer(SHIPPED, "iot:Connect", "client/dev-1", DETACHED) == IMPLICIT_DENY
    assert answer(SHIPPED, "iot:Publish", "topic/devices/dev-1/x", DETACHED) == IMPLICIT_DENY
    anyone = policy(allow("iot:Connect", "*", Condition={"Bool": {"iot:Connection.Thing.IsAttached": "false"}}))
    assert answer(anyone, "iot:Connect", "client/x", DETACHED) == ALLOWED
    assert answer(anyone, "iot:Connect", "client/x", ATTACHED) == IMPLICIT_DENY


def test_explicit_deny_wins_over_any_allow() -> None:
    policies = policy(allow("iot:*", "*"), deny("iot:Publish", f"{ARN}:topic/secret/*"))
    assert answer(policies, "iot:Publish", "topic/secret/x") == EXPLICIT_DENY
    assert answer(policies, "iot:Publish", "topic/open/x") == ALLOWED
    two = [*policy(allow("iot:Publish", "*")), ("q", {"Statement": deny("iot:Publish", "*")})]
    decision = evaluate(two, "iot:Publish", f"{ARN}:topic/t", ATTACHED)
    assert (decision.answer, decision.policies) == (EXPLICIT_DENY, ["q"])


def test_wildcards_are_star_and_question_mark_only() -> None:
    policies = policy(allow("iot:Publish", f"{ARN}:topic/a/?/c*"), allow("iot:Subscribe", f"{ARN}:topicfilter/a/+"))
    assert answer(policies, "iot:Publish", "topic/a/b/c") == ALLOWED
    assert answer(policies, "iot:Publish", "topic/a/b/c/d/e") == ALLOWED  # * crosses /
    assert answer(policies, "iot:Publish", "topic/a/bb/c") == IMPLICIT_DENY  # ? is one character
    # MQTT wildcards are literal characters in a policy resource.
    assert answer(policies, "iot:Subscribe", "topicfilter/a/+") == ALLOWED
    assert answer(policies, "iot:Subscribe", "topicfilter/a/b") == IMPLICIT_DENY
    escaped = policy(allow("iot:Publish", f"{ARN}:topic/lit${{*}}"))
    assert answer(escaped, "iot:Publish", "topic/lit*") == ALLOWED
    assert answer(escaped, "iot:Publish", "topic/literal") == IMPLICIT_DENY


def test_actions_match_case_insensitively_with_wildcards_and_not_action() -> None:
    assert answer(policy(allow("IOT:publish", "*")), "iot:Publish", "topic/t") == ALLOWED
    assert answer(policy(allow("iot:Pub*", "*")), "iot:Publish", "topic/t") == ALLOWED
    assert answer(policy(allow("iot:Pub*", "*")), "iot:Subscribe", "topicfilter/t") == IMPLICIT_DENY
    not_action = policy({"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"})
    assert answer(not_action, "iot:Publish", "topic/t") == IMPLICIT_DENY
    assert answer(not_action, "iot:Receive", "topic/t") == ALLOWED
    not_resource = policy({"Effect": "Allow", "Action": "iot:Publish", "NotResource": f"{ARN}:topic/x"})
    assert answer(not_resource, "iot:Publish", "topic/x") == IMPLICIT_DENY
    assert answer(not_resource, "iot:Publish", "topic/y") == ALLOWED


def test_client_id_type_and_attribute_variables_and_conditions() -> None:
    policies = policy(
        allow("iot:Publish", f"{ARN}:topic/by-client/${{iot:ClientId}}"),
        allow("iot:Publish", f"{ARN}:topic/lines/${{iot:Connection.Thing.Attributes[line]}}/*"),
        allow(
            "iot:Receive",
            "*",
            Condition={
                "StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"},
                "StringLike": {"iot:Connection.Thing.Attributes[floor]": ["1", "3*"]},
            },
        ),
    )
    assert answer(policies, "iot:Publish", "topic/by-client/dev-1") == ALLOWED
    assert answer(policies, "iot:Publish", "topic/by-client/dev-2") == IMPLICIT_DENY
    assert answer(policies, "iot:Publish", "topic/lines/a/x") == ALLOWED
    assert answer(policies, "iot:Publish", "topic/lines/b/x") == IMPLICIT_DENY
    assert answer(policies, "iot:Receive", "topic/any") == ALLOWED
    other = Context(client_id="dev-1", thing=Thing("dev-1", "camera", {"floor": "3"}))
    assert answer(policies, "iot:Receive", "topic/any", other) == IMPLICIT_DENY
    # A missing attribute: the variable does not resolve, the statement does not match.
    assert answer(policies, "iot:Publish", "topic/lines/a/x", other) == IMPLICIT_DENY


def test_negated_operators_and_if_exists_and_null_on_a_missing_key() -> None:
    not_equals = policy(
        allow("iot:Connect", "*", Condition={"StringNotEquals": {"iot:Connection.Thing.Attributes[x]": "1"}})
    )
    assert answer(not_equals, "iot:Connect", "client/c") == ALLOWED  # missing key satisfies a negated operator
    equals = policy(allow("iot:Connect", "*", Condition={"StringEquals": {"iot:Connection.Thing.Attributes[x]": "1"}}))
    assert answer(equals, "iot:Connect", "client/c") == IMPLICIT_DENY
    if_exists = policy(
        allow("iot:Connect", "*", Condition={"StringEqualsIfExists": {"iot:Connection.Thing.Attributes[x]": "1"}})
    )
    assert answer(if_exists, "iot:Connect", "client/c") == ALLOWED
    null = policy(allow("iot:Connect", "*", Condition={"Null": {"iot:Connection.Thing.ThingName": "true"}}))
    assert answer(null, "iot:Connect", "client/c", DETACHED) == ALLOWED
    assert answer(null, "iot:Connect", "client/c", ATTACHED) == IMPLICIT_DENY


def test_certificate_subject_and_issuer_variables() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "dev-cn"), x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    context = Context(client_id="c", certificate=certificate)
    policies = policy(
        allow("iot:Connect", f"{ARN}:client/${{iot:Certificate.Subject.CommonName}}"),
        allow("iot:Publish", f"{ARN}:topic/${{iot:Certificate.Issuer.Country}}/${{iot:Certificate.SerialNumber}}"),
    )
    assert answer(policies, "iot:Connect", "client/dev-cn", context) == ALLOWED
    assert answer(policies, "iot:Connect", "client/other", context) == IMPLICIT_DENY
    assert answer(policies, "iot:Publish", "topic/DE/4242", context) == ALLOWED


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (allow("iot:Connect", "*", Condition={"NumericEquals": {"iot:ClientId": "1"}}), "NumericEquals"),
        (allow("iot:Connect", "*", Condition={"StringEquals": {"aws:SourceIp": "1.2.3.4"}}), "aws:SourceIp"),
        (
            allow("iot:Connect", "*", Condition={"ForAnyValue:StringEquals": {"iot:ClientId": "c"}}),
            "ForAnyValue:StringEquals",
        ),
        (allow("iot:Connect", f"{ARN}:client/${{aws:username}}"), "aws:username"),
        # In a Deny too: a policy we cannot read fully must refuse, not be read in part.
        (deny("iot:Publish", "*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}), "DateGreaterThan"),
    ],
)
def test_what_is_not_emulated_is_refused_loudly(statement: dict[str, Any], named: str) -> None:
    policies = policy(allow("iot:*", "*"), statement)
    with pytest.raises(Unsupported, match=named.replace("$", r"\$")):
        evaluate(policies, "iot:Connect", f"{ARN}:client/c", ATTACHED)


def test_policy_variables_need_version_2012_10_17() -> None:
    statement = allow("iot:Connect", f"{ARN}:client/${{iot:ClientId}}")
    for document in ({"Statement": [statement]}, {"Version": "2008-10-17", "Statement": [statement]}):
        with pytest.raises(Unsupported, match="only 2012-10-17 is emulated"):
            evaluate([("old", document)], "iot:Connect", f"{ARN}:client/c", ATTACHED)
    # Without variables a document without Version reads the same either way.
    plain = [("plain", {"Statement": [allow("iot:Connect", f"{ARN}:client/c")]})]
    assert evaluate(plain, "iot:Connect", f"{ARN}:client/c", ATTACHED).answer == ALLOWED
