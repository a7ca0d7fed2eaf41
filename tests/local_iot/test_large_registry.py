"""The benchmark's endpoint (large_registry.py): the seed control path, and indexed lookups that answer as moto.

One endpoint started by large_registry.py for the module; the pair index is also checked on its own against a
scan of the pairs, the way moto answers ListThingPrincipals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import launcher
from endpoint_testing import LOG_DIR, client, error_of
from large_registry import PairIndex

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})


def scan(pairs: dict, thing: str) -> list[str]:
    return [principal for principal, name in pairs if name == thing]


def test_pair_index_lists_a_things_principals_as_a_scan_of_the_pairs_does():
    index, plain = PairIndex({("p1", "a"): 1}), {("p1", "a"): 1}
    steps = [
        ("set", ("p2", "a")),
        ("set", ("p3", "b")),
        ("set", ("p1", "a")),  # again: keeps its place
        ("del", ("p1", "a")),
        ("set", ("p1", "a")),  # back, now last
        ("pop", ("p2", "a")),
        ("setdefault", ("p4", "a")),
        ("update", ("p5", "b")),
    ]
    for step, key in steps:
        for pairs in (index, plain):
            if step == "set":
                pairs[key] = 0
            elif step == "del":
                del pairs[key]
            elif step == "pop":
                pairs.pop(key)
            elif step == "setdefault":
                pairs.setdefault(key, 0)
            else:
                pairs.update({key: 0})
        for thing in ("a", "b", "c"):
            assert index.principals_of(thing) == scan(plain, thing), (step, key, thing)
    assert index.pop(("nope", "x"), None) is None
    index.clear()
    assert index.principals_of("a") == [] and not index.by_thing


@pytest.fixture(scope="module")
def endpoint():
    os.makedirs(LOG_DIR, exist_ok=True)
    port = launcher.free_port()
    log_path = os.path.join(LOG_DIR, "local_iot_large_registry.log")
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="false")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "large_registry.py"), "--port", str(port), "--no-mqtt"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        launcher.wait_healthy(url, timeout=60, process=process, log_path=log_path)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def seed(endpoint: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{endpoint}/_local/seed", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_seeded_things_are_what_the_api_calls_would_have_made(endpoint):
    iot = client(endpoint)
    iot.create_thing_group(thingGroupName="seeded")
    iot.create_policy(policyName="seeded-policy", policyDocument=POLICY)
    body = {"prefix": "s-", "count": 3, "width": 2, "thing_group": "seeded", "attributes": {"model": "m"}}
    status, answer = seed(endpoint, {**body, "certificates": True, "policy": "seeded-policy"})
    assert (status, answer["things"], answer["certificates"]) == (200, 3, 3)

    assert iot.describe_thing(thingName="s-01")["attributes"] == {"model": "m"}
    members = iot.list_things_in_thing_group(thingGroupName="seeded", maxResults=250)["things"]
    assert sorted(members) == ["s-00", "s-01", "s-02"]
    principals = {name: iot.list_thing_principals(thingName=name)["principals"] for name in members}
    assert all(len(arns) == 1 for arns in principals.values())
    assert len({arns[0] for arns in principals.values()}) == 3  # a certificate of its own each
    arn = principals["s-00"][0]
    described = iot.describe_certificate(certificateId=arn.rsplit("/", 1)[1])["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert iot.list_principal_things(principal=arn)["things"] == ["s-00"]
    targets = iot.list_targets_for_policy(policyName="seeded-policy", pageSize=250)["targets"]
    assert sorted(targets) == sorted(arns[0] for arns in principals.values())

    # The indexed lookups follow later changes as moto's scans would.
    iot.detach_thing_principal(thingName="s-00", principal=arn)
    iot.attach_thing_principal(thingName="s-01", principal=arn)
    assert iot.list_thing_principals(thingName="s-00")["principals"] == []
    assert iot.list_thing_principals(thingName="s-01")["principals"] == [principals["s-01"][0], arn]
    iot.create_thing(thingName="later")
    assert iot.list_thing_principals(thingName="later")["principals"] == []
    code, message, _status = error_of(iot.list_thing_principals, thingName="missing")
    assert code == "ResourceNotFoundException" and "missing" in message
    assert error_of(iot.describe_thing, thingName="missing")[0] == "ResourceNotFoundException"
    assert error_of(iot.attach_policy, policyName="seeded-policy", target=arn + "0")[0] == "ResourceNotFoundException"


def test_a_seed_that_cannot_be_carried_out_makes_nothing(endpoint):
    iot = client(endpoint)
    iot.create_thing_group(thingGroupName="refusals")
    iot.create_thing(thingName="r-1")
    before = len(iot.list_things(maxResults=250)["things"])
    refusals = [
        ({"prefix": "r-", "start": 0, "count": 3, "width": 1, "thing_group": "refusals"}, "already exist"),
        ({"prefix": "n-", "count": 2, "thing_group": "no-such-group"}, "thing_group"),
        ({"prefix": "n-", "count": 2, "certificates": True, "policy": "no-such-policy"}, "policy"),
        ({"prefix": "n-", "count": 0}, "count"),
        ({"prefix": "", "count": 2}, "prefix"),
    ]
    for body, named in refusals:
        status, answer = seed(endpoint, body)
        assert status == 400 and named in answer["error"], (body, answer)
    assert len(iot.list_things(maxResults=250)["things"]) == before


def all_pages(call, key: str, token_in: str, token_out: str, **params) -> list:
    items, token = [], None
    while True:
        page = call(**params, **({token_in: token} if token else {}))
        items += page[key]
        token = page.get(token_out)
        if not token:
            return items


def test_cached_lists_page_whole_and_follow_every_change(endpoint):
    iot = client(endpoint)
    iot.create_thing_group(thingGroupName="paged")
    seed(endpoint, {"prefix": "p-", "count": 7, "width": 1, "thing_group": "paged", "certificates": True})

    def names() -> list[str]:
        things = all_pages(iot.list_things, "things", "nextToken", "nextToken", maxResults=2)
        return [thing["thingName"] for thing in things]

    def members() -> list[str]:
        return all_pages(
            iot.list_things_in_thing_group, "things", "nextToken", "nextToken", thingGroupName="paged", maxResults=3
        )

    def certificates() -> list[dict]:
        return all_pages(iot.list_certificates, "certificates", "marker", "nextMarker", pageSize=2)

    before = names()
    assert [n for n in before if n.startswith("p-")] == [f"p-{i}" for i in range(7)]
    assert members() == [f"p-{i}" for i in range(7)]
    count = len(certificates())
    iot.create_thing(thingName="p-late")
    iot.add_thing_to_thing_group(thingGroupName="paged", thingName="p-late")
    iot.remove_thing_from_thing_group(thingGroupName="paged", thingName="p-3")
    assert names() == [*before, "p-late"]
    assert members() == [f"p-{i}" for i in range(7) if i != 3] + ["p-late"]
    arn = iot.list_thing_principals(thingName="p-0")["principals"][0]
    certificate_id = arn.rsplit("/", 1)[1]
    iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    listed = {c["certificateId"]: c["status"] for c in certificates()}
    assert len(listed) == count and listed[certificate_id] == "INACTIVE"
