"""Every IoT policy the collection ships or shows is least-privilege (issue 9).

A device may connect only as its own thing name, with its certificate attached to that thing
(``iot:Connection.Thing.IsAttached``), and publish, subscribe and receive only under a topic prefix bound to
its thing name. No statement allows ``iot:*`` (or any wildcard action, or NotAction).

A claim policy (fleet provisioning by claim, issue 14) is for a certificate that has no thing yet, so it has its own
rule: connect only with a client id under a fixed, non-empty prefix, and publish, receive and subscribe only on the
fleet provisioning topics (``$aws/certificates/create[-from-csr]/...`` and
``$aws/provisioning-templates/<name>/provision/...``), nothing else.

The documents are read from the roles (defaults and tasks), the playbooks, the README files' YAML and JSON
examples (where they parse) and the modules' EXAMPLES and RETURN blocks.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
from typing import Any, Iterator

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THING_NAME = "${iot:Connection.Thing.ThingName}"
IS_ATTACHED = "iot:Connection.Thing.IsAttached"
# The resource type each data-plane action is checked against.
TOPIC_ACTIONS = {
    "iot:publish": "topic",
    "iot:receive": "topic",
    "iot:retainpublish": "topic",
    "iot:subscribe": "topicfilter",
}
FENCE = re.compile(r"^```(yaml|yml|json)\s*$(.*?)^```", re.MULTILINE | re.DOTALL)


# --------------------------------------------------------------------------- finding the documents


def _yaml_sources() -> Iterator[tuple[str, str]]:
    patterns = ["roles/*/defaults/*.yml", "roles/*/tasks/*.yml", "roles/*/vars/*.yml", "playbooks/*.yml"]
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(REPO, pattern))):
            with open(path, encoding="utf-8") as handle:
                yield os.path.relpath(path, REPO), handle.read()


def _markdown_sources() -> Iterator[tuple[str, str]]:
    for path in [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "roles", "*", "README.md")))]:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        for number, match in enumerate(FENCE.finditer(text)):
            yield f"{os.path.relpath(path, REPO)}#block{number}", match.group(2)


def _module_doc_sources() -> Iterator[tuple[str, str]]:
    for path in sorted(glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))):
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if name in ("EXAMPLES", "RETURN") and isinstance(node.value, ast.Constant):
                    yield f"{os.path.relpath(path, REPO)}:{name}", node.value.value


def _parse(text: str) -> Any:
    try:
        return yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError:
        return None


def _documents(value: Any) -> Iterator[dict[str, Any]]:
    """Every policy document inside a parsed structure, including JSON strings (template PolicyDocument)."""
    if isinstance(value, dict):
        if "Statement" in value:
            yield value
        for item in value.values():
            yield from _documents(item)
    elif isinstance(value, list):
        for item in value:
            yield from _documents(item)
    elif isinstance(value, str) and value.lstrip().startswith("{") and '"Statement"' in value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return
        yield from _documents(parsed)


def shipped_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for source, text in [*_yaml_sources(), *_markdown_sources(), *_module_doc_sources()]:
        for document in _documents(_parse(text)):
            found.append((source, document))
    return found


def iot_documents() -> list[tuple[str, dict[str, Any]]]:
    """The documents with at least one IoT (or wildcard) action: IAM documents (trust, S3 read) are not IoT policies."""
    return [
        (source, document)
        for source, document in shipped_documents()
        if any(
            action == "*" or action.lower().startswith("iot:")
            for statement in _statements(document)
            for action in _as_list(statement.get("Action", statement.get("NotAction", [])))
        )
    ]


# --------------------------------------------------------------------------- the rules


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _as_list(document.get("Statement", [])) if isinstance(s, dict)]


def _is_true(value: Any) -> bool:
    return any(v is True or (isinstance(v, str) and v.lower() == "true") for v in _as_list(value))


def _bound_to_thing(resource: str, resource_type: str) -> bool:
    """arn:...:<type>/<fixed prefix>${iot:Connection.Thing.ThingName}[/...], with no wildcard before the name."""
    marker = f":{resource_type}/"
    if marker not in resource or THING_NAME not in resource:
        return False
    after_type = resource.split(marker, 1)[1]
    before_name = after_type.split(THING_NAME, 1)[0]
    return "*" not in before_name and "?" not in before_name


def violations(document: dict[str, Any]) -> list[str]:
    """What makes the document broader than "a device acts only as its own thing, on its own topics"."""
    problems = []
    for number, statement in enumerate(_statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        where = f"Statement[{number}]"
        if "NotAction" in statement:
            problems.append(f"{where}: NotAction in an Allow statement")
            continue
        if "NotResource" in statement:
            problems.append(f"{where}: NotResource in an Allow statement")
        actions = [str(a) for a in _as_list(statement.get("Action", []))]
        resources = [str(r) for r in _as_list(statement.get("Resource", []))]
        for action in actions:
            lowered = action.lower()
            if "*" in action or "?" in action:
                problems.append(f"{where}: wildcard action {action!r}")
            elif lowered == "iot:connect":
                for resource in resources:
                    if not resource.endswith(f":client/{THING_NAME}"):
                        problems.append(f"{where}: iot:Connect on {resource!r}, not client/{THING_NAME}")
                condition = statement.get("Condition", {}).get("Bool", {})
                if not _is_true(condition.get(IS_ATTACHED)):
                    problems.append(f"{where}: iot:Connect without Bool {IS_ATTACHED} = true")
            elif lowered in TOPIC_ACTIONS:
                for resource in resources:
                    if not _bound_to_thing(resource, TOPIC_ACTIONS[lowered]):
                        problems.append(
                            f"{where}: {action} on {resource!r}, not a {TOPIC_ACTIONS[lowered]} under the thing name"
                        )
            elif lowered.startswith("iot:"):
                for resource in resources:
                    if THING_NAME not in resource or "*" in resource.split(THING_NAME, 1)[0].rsplit(":", 1)[-1]:
                        problems.append(f"{where}: {action} on {resource!r}, not bound to the thing name")
    return problems


CLAIM_TOPIC = re.compile(
    r":(topic|topicfilter)/\$aws/(certificates/create|certificates/create-from-csr|provisioning-templates/[0-9A-Za-z_-]+/provision)/\*$"
)
# The role builds its claim policy's topic list with Jinja; the rendered list is asserted exactly, against the
# endpoint, by tests/integration/test_fleet_provisioning_role.py.
CLAIM_TOPICS_EXPRESSION = re.compile(
    "^"
    + re.escape(
        "{{ fleet_provisioning_request_topics | map('regex_replace', '^(.*)$', fleet_provisioning_arn_prefix ~ ':"
    )
    + "(topic|topicfilter)"
    + re.escape("/\\1/*') | list }}")
    + "$"
)
CLAIM_ACTIONS = {"iot:connect", "iot:publish", "iot:receive", "iot:subscribe"}


def is_claim_policy(document: dict[str, Any]) -> bool:
    resources = [str(r) for s in _statements(document) for r in _as_list(s.get("Resource", []))]
    return any(
        "$aws/certificates/create" in r
        or "$aws/provisioning-templates/" in r
        or "fleet_provisioning_request_topics" in r
        for r in resources
    )


def claim_violations(document: dict[str, Any]) -> list[str]:
    """What makes a claim policy broader than "connect under a client id prefix, use the provisioning topics"."""
    problems = []
    for number, statement in enumerate(_statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        where = f"Statement[{number}]"
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{where}: NotAction or NotResource in an Allow statement")
            continue
        resources = [str(r) for r in _as_list(statement.get("Resource", []))]
        for action in (str(a) for a in _as_list(statement.get("Action", []))):
            lowered = action.lower()
            if lowered not in CLAIM_ACTIONS:
                problems.append(f"{where}: {action} is not a claim's action")
            elif lowered == "iot:connect":
                for resource in resources:
                    prefix = resource.split(":client/", 1)[1] if ":client/" in resource else ""
                    if not prefix.endswith("*") or not prefix[:-1] or "*" in prefix[:-1] or "?" in prefix:
                        problems.append(f"{where}: iot:Connect on {resource!r}, not client/<fixed prefix>*")
            else:
                wanted = TOPIC_ACTIONS[lowered]
                for resource in resources:
                    found = CLAIM_TOPIC.search(resource) or CLAIM_TOPICS_EXPRESSION.match(resource)
                    if not found or found.group(1) != wanted:
                        problems.append(f"{where}: {action} on {resource!r}, not a fleet provisioning {wanted}")
    return problems


# --------------------------------------------------------------------------- the tests


def test_the_scan_finds_the_documents_the_collection_shows():
    sources = {source.split("#")[0].split(":")[0] for source, _document in iot_documents()}
    assert {
        "roles/jitp/tasks/main.yml",
        "playbooks/demo.yml",
        "roles/bulk/README.md",
        "plugins/modules/policy.py",
        "plugins/modules/policy_info.py",
    } <= sources


@pytest.mark.parametrize(
    "source, document",
    iot_documents(),
    ids=[f"{source}-{number}" for number, (source, _document) in enumerate(iot_documents())],
)
def test_every_shipped_iot_policy_is_least_privilege(source, document):
    found = claim_violations(document) if is_claim_policy(document) else violations(document)
    assert found == [], f"{source}: {json.dumps(document)}"


def test_the_scan_finds_the_claim_policy():
    assert [source for source, document in iot_documents() if is_claim_policy(document)] == [
        "roles/fleet_provisioning/vars/main.yml"
    ]


CLAIM = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:eu-west-1:1:client/provision-*"},
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [
                "arn:aws:iot:eu-west-1:1:topic/$aws/certificates/create-from-csr/*",
                "arn:aws:iot:eu-west-1:1:topic/$aws/provisioning-templates/plant/provision/*",
            ],
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": "arn:aws:iot:eu-west-1:1:topicfilter/$aws/provisioning-templates/plant/provision/*",
        },
    ],
}


def _claim_with(number: int, **changes: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(CLAIM))
    document["Statement"][number].update(changes)
    return document


@pytest.mark.parametrize(
    "document, problem",
    [
        (_claim_with(0, Resource="arn:aws:iot:eu-west-1:1:client/*"), "iot:Connect on"),
        (_claim_with(0, Resource="arn:aws:iot:eu-west-1:1:client/provision-1"), "iot:Connect on"),
        (_claim_with(1, Resource="arn:aws:iot:eu-west-1:1:topic/$aws/certificates/create/*x"), "iot:Publish on"),
        (_claim_with(1, Resource="arn:aws:iot:eu-west-1:1:topic/devices/*"), "iot:Publish on"),
        (_claim_with(2, Resource="arn:aws:iot:eu-west-1:1:topic/$aws/certificates/create/*"), "iot:Subscribe on"),
        (_claim_with(2, Action="iot:UpdateThingShadow"), "not a claim's action"),
        (_claim_with(2, Action="iot:*"), "not a claim's action"),
    ],
)
def test_the_claim_rule_catches_broad_grants(document, problem):
    assert is_claim_policy(document)
    assert any(problem in found for found in claim_violations(document)), claim_violations(document)


def test_the_claim_model_passes():
    assert claim_violations(CLAIM) == []


LEAST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": f"arn:aws:iot:eu-west-1:123456789012:client/{THING_NAME}",
            "Condition": {"Bool": {IS_ATTACHED: "true"}},
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": f"arn:aws:iot:eu-west-1:123456789012:topic/devices/{THING_NAME}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": f"arn:aws:iot:eu-west-1:123456789012:topicfilter/devices/{THING_NAME}/*",
        },
        {"Effect": "Deny", "Action": "iot:*", "Resource": "*"},
    ],
}


def _with(number: int, **changes: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(LEAST))
    document["Statement"][number].update(changes)
    for key, value in list(document["Statement"][number].items()):
        if value is None:
            del document["Statement"][number][key]
    return document


@pytest.mark.parametrize(
    "document, problem",
    [
        (_with(0, Resource="*"), "iot:Connect on '*'"),
        (_with(0, Condition=None), "without Bool"),
        (_with(0, Condition={"Bool": {IS_ATTACHED: "false"}}), "without Bool"),
        (_with(0, Resource="arn:aws:iot:*:*:client/${iot:ClientId}"), "iot:Connect on"),
        (_with(1, Action="iot:*"), "wildcard action 'iot:*'"),
        (_with(1, Action="*"), "wildcard action '*'"),
        (_with(1, Resource="arn:aws:iot:eu-west-1:123456789012:topic/*"), "iot:Publish on"),
        (_with(1, Resource=f"arn:aws:iot:eu-west-1:123456789012:topic/*/{THING_NAME}/*"), "iot:Publish on"),
        (_with(2, Resource=f"arn:aws:iot:eu-west-1:123456789012:topic/devices/{THING_NAME}/*"), "iot:Subscribe on"),
        (_with(2, Action=None, NotAction="iot:Connect"), "NotAction"),
        (_with(1, Action="iot:UpdateThingShadow", Resource="arn:aws:iot:eu-west-1:1:thing/*"), "not bound"),
    ],
)
def test_the_rules_catch_broad_grants(document, problem):
    assert any(problem in found for found in violations(document)), violations(document)


def test_the_least_privilege_model_passes():
    assert violations(LEAST) == []
