"""An independent look at the local endpoint's state, for integration targets.

Targets call it through the test-only ``iot_probe`` action (tests/integration/plugins/action),
which runs ``main`` in Ansible's worker process with the very argv a command task would
take, and parse its JSON output, so that what a module claims is checked against what the
endpoint holds, by a client that shares no code with the collection. It also runs as a
command, with the same output.

Usage:
  iot_probe.py OPERATION [JSON_PARAMS]   call boto3's iot client method OPERATION (snake_case)
  iot_probe.py --service s3 OPERATION [JSON_PARAMS]
  iot_probe.py --reset-calls             forget the calls the endpoint recorded
  iot_probe.py --mutating-calls          list the mutating IoT calls since the last reset
  iot_probe.py --tags ARN                the resource's tags as {"tags": {key: value}} (every page)

A failed call prints {"error": CODE, "message": ...} and exits 0, so targets can
assert on errors (e.g. ResourceNotFoundException after a removal).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import urllib.request
from typing import Any

import boto3
from botocore.exceptions import ClientError

READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Search")


def endpoint() -> str:
    return os.environ["LOCAL_IOT_ENDPOINT"]


def _default(value: object) -> str:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def recorded_calls(reset: bool = False) -> list[str]:
    request = urllib.request.Request(f"{endpoint()}/_local/calls", method="DELETE" if reset else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["calls"]


@functools.lru_cache(maxsize=None)
def client(service: str = "iot") -> Any:
    """One client per service and process: the action plugin calls main() many times in one process."""
    return boto3.client(
        service,
        endpoint_url=endpoint(),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def error_json(error: ClientError) -> str:
    return json.dumps({"error": error.response["Error"]["Code"], "message": error.response["Error"].get("Message")})


def tags_of(arn: str) -> dict[str, str]:
    """ListTagsForResource, every page, as one dict."""
    iot = client()
    tags: dict[str, str] = {}
    params = {"resourceArn": arn}
    while True:
        page = iot.list_tags_for_resource(**params)
        tags.update({tag["Key"]: tag.get("Value", "") for tag in page.get("tags", [])})
        if not page.get("nextToken"):
            return tags
        params["nextToken"] = page["nextToken"]


def main(argv: list[str]) -> int:
    service = "iot"
    if argv[:1] == ["--service"]:
        service, argv = argv[1], argv[2:]
    if argv == ["--reset-calls"]:
        recorded_calls(reset=True)
        print(json.dumps({"calls": []}))
        return 0
    if argv == ["--mutating-calls"]:
        calls = [c for c in recorded_calls() if c and not c.startswith(READ_ONLY_PREFIXES)]
        print(json.dumps({"calls": calls}))
        return 0
    if argv[:1] == ["--tags"] and len(argv) == 2:
        try:
            print(json.dumps({"tags": tags_of(argv[1])}))
        except ClientError as error:
            print(error_json(error))
        return 0
    operation = argv[0]
    params = json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        result = getattr(client(service), operation)(**params)
    except ClientError as error:
        print(error_json(error))
        return 0
    result.pop("ResponseMetadata", None)
    print(json.dumps(result, default=_default))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
