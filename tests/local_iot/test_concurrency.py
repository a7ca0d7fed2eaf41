"""The endpoint under the concurrency the fleet uses: many clients reading and writing at once.

moto's backends are dicts iterated by list calls; without the endpoint's state lock a listing racing a create
answered 500 (``OrderedDict mutated during iteration``), which a client retries or reports as an AWS failure
that AWS never gives. Bounded: a fixed number of workers and operations, one attempt per call, no retries.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import client, module_endpoint, reset

WORKERS = 8
DEVICES_PER_WORKER = 12
GROUP = "concurrency"


@pytest.fixture(scope="module")
def endpoint() -> str:
    with module_endpoint("concurrency") as url:
        yield url


def _one_attempt(endpoint: str) -> Any:
    # One attempt per call: a 500 must show, not be retried away; a wide pool for the threads sharing it.
    return client(endpoint, config=Config(retries={"total_max_attempts": 1}, max_pool_connections=WORKERS * 2))


def _list_all(iot: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    return [item for page in iot.get_paginator(operation).paginate(**kwargs) for item in page[key]]


def _worker(iot: Any, worker: int) -> list[str]:
    """Create devices while listing everything the others are changing; the errors seen, as text."""
    errors: list[str] = []
    for index in range(DEVICES_PER_WORKER):
        name = f"w{worker:02d}-d{index:03d}"
        try:
            iot.create_thing(thingName=name, attributePayload={"attributes": {"worker": str(worker)}})
            iot.add_thing_to_thing_group(thingGroupName=GROUP, thingName=name)
            certificate = iot.create_keys_and_certificate(setAsActive=False)
            iot.attach_thing_principal(thingName=name, principal=certificate["certificateArn"])
            iot.update_thing(thingName=name, attributePayload={"attributes": {"index": str(index)}, "merge": True})
            _list_all(iot, "list_things", "things", maxResults=50)
            _list_all(iot, "list_certificates", "certificates", pageSize=50)
            _list_all(iot, "list_things_in_thing_group", "things", thingGroupName=GROUP, maxResults=50)
            iot.list_thing_principals(thingName=name)
        except ClientError as error:
            errors.append(f"{name}: {error.response['Error'].get('Code')} {error}")
    return errors


def test_parallel_readers_and_writers_get_no_server_errors_and_lose_nothing(endpoint: str) -> None:
    reset(endpoint)
    iot = _one_attempt(endpoint)
    iot.create_thing_group(thingGroupName=GROUP)
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda worker: _worker(iot, worker), range(WORKERS)))
    errors = [error for result in results for error in result]
    assert errors == []
    expected = WORKERS * DEVICES_PER_WORKER
    things = _list_all(iot, "list_things", "things", maxResults=100)
    assert len(things) == expected
    assert len({thing["thingName"] for thing in things}) == expected
    members = _list_all(iot, "list_things_in_thing_group", "things", thingGroupName=GROUP, maxResults=100)
    assert len(members) == expected
    assert len(_list_all(iot, "list_certificates", "certificates", pageSize=100)) == expected
