"""provisioning_template option checks: every name and ARN is matched whole, before any call."""

from __future__ import annotations

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import templates
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

HOOK_ARN = "arn:aws:lambda:us-east-1:123456789012:function:pre-provisioning"


@pytest.mark.parametrize(
    "params, field",
    [
        ({"name": "fleet-template\n"}, "name"),
        (
            {"name": "t", "provisioning_role_arn": "arn:aws:iam::123456789012:role/provisioning\n"},
            "provisioning_role_arn",
        ),
        ({"name": "t", "pre_provisioning_hook": {"target_arn": HOOK_ARN + "\n"}}, "pre_provisioning_hook.target_arn"),
        (
            {"name": "t", "provisioning_role_arn": "arn:aws:iam::123456789012:role/prövisioning"},
            "provisioning_role_arn",
        ),
    ],
)
def test_names_and_arns_are_matched_whole(params, field):
    with pytest.raises(ValidationError) as caught:
        templates.validate(params)
    assert caught.value.field == field


def test_valid_names_and_arns_pass():
    desired = templates.validate(
        {
            "name": "fleet-template",
            "provisioning_role_arn": "arn:aws:iam::123456789012:role/provisioning",
            "pre_provisioning_hook": {"target_arn": HOOK_ARN},
        }
    )
    assert desired.name == "fleet-template"
    assert desired.provisioning_role_arn.endswith("role/provisioning")
