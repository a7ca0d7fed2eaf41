"""The bulk_registration_template filter: the bulk role's template, as AWS and the template engine read it."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.provisioning.plugins.filter.bulk_registration_template import (
    bulk_registration_template,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils import template_engine as te


def test_the_template_of_a_fleet_with_attributes_groups_and_a_type():
    template = bulk_registration_template(["ThingName", "Attribute_floor", "ThingGroups"], "fleet-policy", "sensor")
    assert list(template["Parameters"]) == ["ThingName", "Attribute_floor", "ThingGroups", "CSR"]
    assert all(p == {"Type": "String"} for p in template["Parameters"].values())
    thing = template["Resources"]["thing"]
    assert thing["Properties"] == {
        "ThingName": {"Ref": "ThingName"},
        "AttributePayload": {"floor": {"Ref": "Attribute_floor"}},
        "ThingGroups": {"Fn::Split": [",", {"Ref": "ThingGroups"}]},
        "ThingTypeName": "sensor",
    }
    assert thing["OverrideSettings"] == {
        "AttributePayload": "REPLACE",
        "ThingGroups": "REPLACE",
        "ThingTypeName": "REPLACE",
    }
    assert template["Resources"]["certificate"]["Properties"] == {
        "CertificateSigningRequest": {"Ref": "CSR"},
        "Status": "ACTIVE",
    }
    assert template["Resources"]["policy"]["Properties"] == {"PolicyName": "fleet-policy"}


@pytest.mark.parametrize("thing_type", ["", None])
def test_a_bare_fleet_has_only_a_name(thing_type):
    template = bulk_registration_template(["ThingName"], "p", thing_type)
    assert template["Resources"]["thing"]["Properties"] == {"ThingName": {"Ref": "ThingName"}}
    assert list(template["Parameters"]) == ["ThingName", "CSR"]


def test_the_template_engine_renders_it_as_a_registration_task_would():
    with open(
        __file__.replace("filter/test_bulk_registration_template.py", "module_utils/fixtures/templates/bulk_csr.json")
    ) as handle:
        csr = json.load(handle)["parameters"]["CSR"]
    body = bulk_registration_template(["ThingName", "Attribute_floor", "ThingGroups"], "fleet-policy")
    rendered = te.render(te.parse(body), {"ThingName": "d1", "Attribute_floor": "2", "ThingGroups": "a,b", "CSR": csr})
    assert rendered["thing"]["name"] == "d1"
    assert rendered["thing"]["attributes"] == {"floor": "2"}
    assert rendered["thing"]["thing_groups"] == ["a", "b"]
    assert rendered["certificate"]["source"] == "csr"
    assert [p["name"] for p in rendered["policies"]] == ["fleet-policy"]


@pytest.mark.parametrize(
    "names, policy, message",
    [
        ("ThingName", "p", "must be a list of parameter names"),
        (["Attribute_floor"], "p", "must include ThingName"),
        (["ThingName"], "", "a policy name is required"),
    ],
)
def test_refused_input_names_the_rule(names, policy, message):
    with pytest.raises(AnsibleFilterError, match=message):
        bulk_registration_template(names, policy)
