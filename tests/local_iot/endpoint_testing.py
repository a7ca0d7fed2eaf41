"""What the endpoint's own test modules share: one endpoint per module, resets, plain boto3 clients, errors."""

from __future__ import annotations

import contextlib
import os
import urllib.request
from typing import Any, Callable, Iterator, Sequence

import boto3
import launcher
import pytest
from botocore.exceptions import ClientError

LOG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output")


@contextlib.contextmanager
def module_endpoint(name: str, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """An endpoint for one test module, logging to tests/output/local_iot_<name>.log.

    Without AWS's IAM managed policies (none of these tests needs them) a reset takes milliseconds, not seconds.
    """
    os.makedirs(LOG_DIR, exist_ok=True)
    log = os.path.join(LOG_DIR, f"local_iot_{name}.log")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")
        with launcher.running_endpoint(extra_args=list(extra_args), log_path=log) as url:
            yield url


def reset(endpoint: str) -> None:
    """Forget every resource of every account and region."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()


def client(endpoint: str, service: str = "iot", config: Any = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def error_of(call: Callable[..., Any], **kwargs: Any) -> tuple[str, str, int]:
    """(error code, message, HTTP status) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]
