"""AWS managed IAM policies built once per endpoint, not once per reset.

moto builds its ~1,600 AWS managed policies (the endpoint loads them: AWS has AWSIoTThingsRegistration and the like)
from a JSON text each time an IAM backend is made, which is after every ``/moto-api/reset``: about 2.5 s of CPU per
reset in the threaded server, most of it the garbage collector walking the new objects. Tests reset between cases,
so that cost was paid some eighty times a CI run.

Here the JSON is parsed and each policy built once per (account, region); a new backend gets shallow copies with
their own tags and versions lists, so what one backend lifetime changes (attachment counts, tags) never reaches the
next. The policies' content is moto's, unchanged.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

from fidelity_core import PatchShapeError
from moto.iam import models as iam_models
from moto.settings import load_iam_aws_managed_policies

_PROTOTYPES: dict[tuple[str, str], list[Any]] = {}
_LOCK = threading.Lock()
_INSTALLED = False


def _fresh_copy(prototype: Any) -> Any:
    policy = copy.copy(prototype)
    policy.tags = dict(prototype.tags)
    policy.versions = [copy.copy(version) for version in prototype.versions]
    return policy


def _prototypes(account_id: str, region_name: str) -> list[Any]:
    key = (account_id, region_name)
    with _LOCK:
        if key not in _PROTOTYPES:
            parsed = json.loads(iam_models.aws_managed_policies_data)
            _PROTOTYPES[key] = [
                iam_models.AWSManagedPolicy.from_data(name, account_id, region_name, data)
                for name, data in parsed.items()
            ]
        return _PROTOTYPES[key]


def _init_aws_policies(backend: Any) -> list[Any]:
    if not load_iam_aws_managed_policies():
        return []
    return [_fresh_copy(policy) for policy in _prototypes(backend.account_id, backend.region_name)]


def install() -> None:
    """Replace IAMBackend._init_aws_policies; refuse to start if moto's shape changed."""
    global _INSTALLED
    if _INSTALLED:
        return
    for owner, name in (
        (iam_models.IAMBackend, "_init_aws_policies"),
        (iam_models.AWSManagedPolicy, "from_data"),
        (iam_models, "aws_managed_policies_data"),
    ):
        if not hasattr(owner, name):
            raise PatchShapeError("iam-managed-policies-once", f"moto.iam.models has no {name}")
    iam_models.IAMBackend._init_aws_policies = _init_aws_policies
    _INSTALLED = True
