"""Fleet indexing, SearchIndex, dynamic thing groups and billing groups (registry_index.py), with plain boto3.

The query parser is tested without an endpoint; the APIs against one endpoint for the module, reset before every
test. Each refusal is asserted with AWS's error code and HTTP status.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import registry_index
from endpoint_testing import client, error_of, module_endpoint, reset

# --------------------------------------------------------------------------- the query language, no endpoint


class _Registry:
    """Just what registry_index.matches reads from a moto backend."""

    def __init__(self) -> None:
        self.thing_groups: dict[str, Any] = {}
        self.__dict__["_local_fidelity"] = {}


def _thing(name: str, type_name: str | None = None, **attributes: str) -> Any:
    thing_type = SimpleNamespace(thing_type_name=type_name) if type_name else None
    return SimpleNamespace(
        thing_name=name, thing_id=f"id-{name}", thing_type=thing_type, attributes=attributes, arn=name
    )


def _matching(query: str, things: list[Any], backend: Any = None) -> list[str]:
    parsed = registry_index.parse_query(query)
    return [t.thing_name for t in things if registry_index.matches(backend or _Registry(), t, parsed)]


THINGS = [
    _thing("tv-oled", "tv", color="black", size="55"),
    _thing("tv-plasma", "tv", color="silver"),
    _thing("radio-1", None, color="Black"),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("*", ["tv-oled", "tv-plasma", "radio-1"]),
        ("thingName:tv*", ["tv-oled", "tv-plasma"]),
        ("thingName:(tv* AND -tv-plasma)", ["tv-oled"]),  # the developer guide's own field-grouping example
        ("thingName:tv* thingTypeName:tv attributes.color:black", ["tv-oled"]),  # implicit AND
        ("attributes.color:BLACK", ["tv-oled", "radio-1"]),  # values are case-insensitive
        ("attributes.color:black OR attributes.color:silver", ["tv-oled", "tv-plasma", "radio-1"]),
        ("NOT thingTypeName:tv", ["radio-1"]),
        ("thingTypeName:*", ["tv-oled", "tv-plasma"]),  # field:* means the field is set
        ("attributes.size:*", ["tv-oled"]),
        ("(thingName:radio* OR attributes.size:55) AND -attributes.color:silver", ["tv-oled", "radio-1"]),
        ('attributes.color:"silver"', ["tv-plasma"]),
        ("silver", ["tv-plasma"]),  # a term without a field: any registry field
        ("thingName:tv", []),  # exact, not a substring
    ],
)
def test_query_matches(query: str, expected: list[str]) -> None:
    assert _matching(query, THINGS) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("thingName:a@b", "Special characters @"),  # AWS lists ` @ # % \ / ' ; , as unsupported
        ("thingName:/tv.*/", "Special characters /"),  # regular expressions
        ("thingName:tv~", "Fuzzy"),
        ("thingName:tv^2", "boosting"),
        ("attributes.size:[40 TO 60]", "range searches"),
        ("attributes.size>40", "range searches"),
        ("thingName:*oled", "trailing '*'"),  # leading wildcard: AWS serves it, not emulated here
        ("thingName:tv?oled", "trailing '*'"),
        ("shadow.reported.color:red", "does not emulate queries on 'shadow.reported.color'"),
        ("connectivity.connected:true", "does not emulate"),
        ("thingname:tv", "field names are case sensitive"),
        ("thingName:(tv OR radio", "missing ')'"),
        ("AND thingName:tv", "expected a term"),
        (" ".join(f"thingName:t{i}" for i in range(13)), "at most 12 terms"),
    ],
)
def test_query_refused(query: str, message: str) -> None:
    with pytest.raises(registry_index.InvalidQueryException) as caught:
        registry_index.parse_query(query)
    assert message in str(caught.value.description)


# --------------------------------------------------------------------------- the APIs


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("registry_index", ["--no-mqtt"]) as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    return client(endpoint)


def _seed(endpoint: str, things: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"region": "us-east-1", "things": things}).encode()
    request = urllib.request.Request(f"{endpoint}/_local/registry/seed", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return {"status": error.code, **json.loads(error.read())}


def _registry(endpoint: str, iot: Any) -> None:
    iot.create_thing_type(thingTypeName="tv")
    iot.create_thing_group(thingGroupName="living-room")
    things = [
        {"thingName": f"tv-{i:03d}", "thingTypeName": "tv", "attributes": {"color": "black" if i % 2 else "white"}}
        for i in range(30)
    ]
    things[0]["thingGroups"] = ["living-room"]
    assert _seed(endpoint, things) == {"created": 30}


def test_indexing_configuration_rules(iot: Any) -> None:
    config = iot.get_indexing_configuration()
    assert config["thingIndexingConfiguration"]["thingIndexingMode"] == "OFF"
    assert config["thingGroupIndexingConfiguration"]["thingGroupIndexingMode"] == "OFF"
    # Model: connectivity (and Device Defender) indexing needs thing indexing on.
    code, message, status = error_of(
        iot.update_indexing_configuration,
        thingIndexingConfiguration={"thingIndexingMode": "OFF", "thingConnectivityIndexingMode": "STATUS"},
    )
    assert (code, status) == ("InvalidRequestException", 400) and "thingConnectivityIndexingMode" in message
    code = error_of(
        iot.update_indexing_configuration,
        thingIndexingConfiguration={"thingIndexingMode": "REGISTRY", "namedShadowIndexingMode": "ON"},
    )[0]
    assert code == "InvalidRequestException"
    code = error_of(iot.update_indexing_configuration, thingIndexingConfiguration={"thingIndexingMode": "ON"})[0]
    assert code == "InvalidRequestException"  # not in the model's enum
    iot.update_indexing_configuration(
        thingIndexingConfiguration={
            "thingIndexingMode": "REGISTRY_AND_SHADOW",
            "thingConnectivityIndexingMode": "STATUS",
            "namedShadowIndexingMode": "ON",
            "filter": {"namedShadowNames": ["config"]},
        }
    )
    iot.update_indexing_configuration(thingGroupIndexingConfiguration={"thingGroupIndexingMode": "ON"})
    config = iot.get_indexing_configuration()
    thing = config["thingIndexingConfiguration"]
    assert thing["thingIndexingMode"] == "REGISTRY_AND_SHADOW"  # the thing structure was left alone
    assert thing["filter"]["namedShadowNames"] == ["config"]
    assert config["thingGroupIndexingConfiguration"]["thingGroupIndexingMode"] == "ON"


def test_search_index(endpoint: str, iot: Any) -> None:
    _registry(endpoint, iot)
    code, _message, status = error_of(iot.search_index, queryString="*")
    assert (code, status) == ("ResourceNotFoundException", 404)  # thing indexing is off: no AWS_Things index
    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "REGISTRY"})
    names, token, pages = [], None, 0
    while True:
        page = iot.search_index(
            queryString="attributes.color:black", maxResults=4, **({"nextToken": token} if token else {})
        )
        assert len(page["things"]) <= 4
        names += [t["thingName"] for t in page["things"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert names == [f"tv-{i:03d}" for i in range(1, 30, 2)] and pages == 4
    first = iot.search_index(queryString="thingGroupNames:living-room")["things"]
    assert [(t["thingName"], t["thingTypeName"], t["thingGroupNames"]) for t in first] == [
        ("tv-000", "tv", ["living-room"])
    ]
    for params, code, status in (
        ({"queryString": "*", "maxResults": 101}, "InvalidRequestException", 400),  # "cannot exceed 100"
        ({"queryString": "thingName:a@b"}, "InvalidQueryException", 400),
        ({"queryString": "*", "indexName": "no_such_index"}, "ResourceNotFoundException", 404),
        ({"queryString": "*", "queryVersion": "2099-01-01"}, "InvalidRequestException", 400),
        ({"queryString": "*", "nextToken": "forged"}, "InvalidRequestException", 400),
    ):
        assert error_of(iot.search_index, **params)[::2] == (code, status), params


def test_dynamic_thing_groups(endpoint: str, iot: Any) -> None:
    _registry(endpoint, iot)
    code, message, _status = error_of(iot.create_dynamic_thing_group, thingGroupName="black", queryString="*")
    assert code == "InvalidRequestException" and "fleet indexing" in message
    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "REGISTRY"})
    made = iot.create_dynamic_thing_group(thingGroupName="black", queryString="attributes.color:black")
    assert (made["indexName"], made["queryVersion"]) == ("AWS_Things", "2017-09-30")
    described = iot.describe_thing_group(thingGroupName="black")
    assert (described["queryString"], described["status"]) == ("attributes.color:black", "ACTIVE")
    members = iot.list_things_in_thing_group(thingGroupName="black", maxResults=250)["things"]
    assert sorted(members) == [f"tv-{i:03d}" for i in range(1, 30, 2)]
    # Membership follows the registry: a thing repainted joins, on the next read.
    iot.update_thing(thingName="tv-000", attributePayload={"attributes": {"color": "black"}, "merge": True})
    groups = iot.list_thing_groups_for_thing(thingName="tv-000")["thingGroups"]
    assert sorted(g["groupName"] for g in groups) == ["black", "living-room"]
    # What static groups allow and dynamic ones do not.
    iot.create_policy(policyName="p", policyDocument='{"Version": "2012-10-17", "Statement": []}')
    for call, params in (
        (iot.add_thing_to_thing_group, {"thingGroupName": "black", "thingName": "tv-002"}),
        (iot.remove_thing_from_thing_group, {"thingGroupName": "black", "thingName": "tv-001"}),
        (iot.create_thing_group, {"thingGroupName": "child", "parentGroupName": "black"}),
        (iot.delete_thing_group, {"thingGroupName": "black"}),
        (iot.attach_policy, {"policyName": "p", "target": made["thingGroupArn"]}),
        (iot.update_dynamic_thing_group, {"thingGroupName": "living-room", "thingGroupProperties": {}}),
        (iot.create_dynamic_thing_group, {"thingGroupName": "living-room", "queryString": "*"}),
        (iot.create_dynamic_thing_group, {"thingGroupName": "x", "queryString": "*", "queryVersion": "1"}),
        (iot.update_indexing_configuration, {"thingIndexingConfiguration": {"thingIndexingMode": "OFF"}}),
    ):
        code, _message, status = error_of(call, **params)
        assert status in (400, 409) and code in ("InvalidRequestException", "ResourceAlreadyExistsException"), params
    code = error_of(iot.create_dynamic_thing_group, thingGroupName="y", queryString="thingName:*x")[0]
    assert code == "InvalidQueryException"
    version = iot.update_dynamic_thing_group(
        thingGroupName="black", thingGroupProperties={}, queryString="thingName:tv-00*", expectedVersion=1
    )["version"]
    assert version == 2
    assert error_of(iot.delete_dynamic_thing_group, thingGroupName="black", expectedVersion=1)[0] == (
        "VersionConflictException"
    )
    members = iot.list_things_in_thing_group(thingGroupName="black", maxResults=250)["things"]
    assert sorted(members) == [f"tv-{i:03d}" for i in range(10)]
    iot.delete_dynamic_thing_group(thingGroupName="black")
    iot.delete_dynamic_thing_group(thingGroupName="black")  # a missing group deletes fine
    assert error_of(iot.describe_thing_group, thingGroupName="black")[0] == "ResourceNotFoundException"
    assert error_of(iot.delete_dynamic_thing_group, thingGroupName="living-room")[0] == "InvalidRequestException"


def test_billing_groups(endpoint: str, iot: Any) -> None:
    iot.create_billing_group(billingGroupName="a", billingGroupProperties={"billingGroupDescription": "A"})
    iot.create_billing_group(billingGroupName="b")
    iot.create_thing(thingName="t1", billingGroupName="a")
    iot.create_thing(thingName="t2")
    assert iot.describe_billing_group(billingGroupName="a")["version"] == 1
    code, message, status = error_of(iot.add_thing_to_billing_group, billingGroupName="b", thingName="t1")
    assert (code, status) == ("InvalidRequestException", 400) and "already in billing group a" in message
    iot.add_thing_to_billing_group(billingGroupName="a", thingName="t1")  # the same group again: fine
    iot.add_thing_to_billing_group(billingGroupName="a", thingName="t2")
    first = iot.list_things_in_billing_group(billingGroupName="a", maxResults=1)
    second = iot.list_things_in_billing_group(billingGroupName="a", maxResults=1, nextToken=first["nextToken"])
    assert first["things"] + second["things"] == ["t1", "t2"] and "nextToken" not in second
    assert error_of(iot.delete_billing_group, billingGroupName="a", expectedVersion=7)[0] == "VersionConflictException"
    iot.delete_billing_group(billingGroupName="a")
    iot.delete_billing_group(billingGroupName="a")  # the model lists no ResourceNotFoundException
    assert "billingGroupName" not in iot.describe_thing(thingName="t1")
    iot.add_thing_to_billing_group(billingGroupName="b", thingName="t1")  # released: it may join another
    assert iot.describe_thing(thingName="t1")["billingGroupName"] == "b"


def test_seed_refuses_a_bad_item(endpoint: str, iot: Any) -> None:
    answer = _seed(endpoint, [{"thingName": "ok"}, {"thingName": "bad name"}, {"thingName": "never"}])
    assert answer["status"] == 400 and answer["created"] == 1 and "bad name" in answer["error"]
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["ok"]
