"""AWS IoT input limits: each rule accepts its boundary and refuses one past it, naming the field."""

from __future__ import annotations

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    check_attribute_name,
    check_attribute_value,
    check_attributes,
    check_count,
    check_description,
    check_name,
    check_positive_int,
    check_principal,
    check_tags,
    check_thing_attribute_count,
    check_thing_group_name,
    check_thing_name,
    check_thing_type_name,
    check_unique_names,
)


@pytest.mark.parametrize("name", ["a", "sensor-0001", "A:b_c-D9", "x" * 128])
def test_thing_name_accepts_the_documented_alphabet_and_length(name):
    assert check_thing_name("name", name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("bad name", "must match [a-zA-Z0-9:_-]+"),
        ("sensor/1", "must match [a-zA-Z0-9:_-]+"),
        ("caf\u00e9", "must match [a-zA-Z0-9:_-]+"),
        ("x" * 129, "must be at most 128 characters, got 129"),
        ("", "must not be empty"),
        # Matched whole: a final line break passes re.match with "$"; path-like names are refused too.
        ("nl-dev\n", "must match [a-zA-Z0-9:_-]+"),
        ("../../x", "must match [a-zA-Z0-9:_-]+"),
    ],
)
def test_thing_name_refusals_name_the_field_and_rule(name, rule):
    with pytest.raises(ValidationError) as err:
        check_thing_name("name", name)
    assert err.value.field == "name"
    assert rule in str(err.value)
    assert str(err.value).startswith("name: ")


def test_long_values_are_cut_in_messages():
    with pytest.raises(ValidationError) as err:
        check_thing_name("name", "!" * 100)
    assert "!" * 41 not in str(err.value)


def test_non_string_name_is_refused():
    with pytest.raises(ValidationError, match="name: must be a string, got int"):
        check_thing_name("name", 5)


def test_type_and_group_names_share_the_thing_name_rule():
    assert check_thing_type_name("thing_type", "t:1") == "t:1"
    with pytest.raises(ValidationError, match="thing_groups: must match"):
        check_thing_group_name("thing_groups", "g 1")


def test_check_name_takes_its_own_limits():
    assert check_name("x", "abc", max_len=3, pattern="[a-c]+") == "abc"
    with pytest.raises(ValidationError, match="at most 2 characters, got 3"):
        check_name("x", "abc", max_len=2, pattern="[a-c]+")
    with pytest.raises(ValidationError, match=r"must match \[a-b\]\+"):
        check_name("x", "abc", max_len=3, pattern="[a-b]+")


@pytest.mark.parametrize("name", ["model", "a_b.c,d@e/f:g#h-i", "n" * 128])
def test_attribute_names(name):
    assert check_attribute_name("attributes", name) == name


@pytest.mark.parametrize("name", ["has space", "eq=sign", "n" * 129, ""])
def test_attribute_name_refusals(name):
    with pytest.raises(ValidationError) as err:
        check_attribute_name("attributes", name)
    assert err.value.field == "attributes"


@pytest.mark.parametrize("value", ["", "v1", "a=b", "[x]", "a_b.c,d@e/f:g#h-i", "v" * 800])
def test_attribute_values(value):
    assert check_attribute_value("attributes.k", value) == value


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("has space", "must match"),
        ("dollar$", "must match"),
        ("quote'", "must match"),
        ("v" * 801, "must be at most 800 characters, got 801"),
    ],
)
def test_attribute_value_refusals(value, rule):
    with pytest.raises(ValidationError) as err:
        check_attribute_value("attributes.k", value)
    assert err.value.field == "attributes.k"
    assert rule in err.value.rule


def test_yaml_scalars_become_the_strings_aws_stores():
    assert check_attributes("attributes", {"n": 75, "f": 1.5, "b": True, "c": False, "s": "x"}) == {
        "n": "75",
        "f": "1.5",
        "b": "true",
        "c": "false",
        "s": "x",
    }


def test_attribute_value_none_or_structures_are_refused():
    with pytest.raises(ValidationError, match=r'attributes\.k: must be a string; use "" to remove'):
        check_attributes("attributes", {"k": None})
    with pytest.raises(ValidationError, match=r"attributes\.k: must be a string, got list"):
        check_attributes("attributes", {"k": [1]})
    with pytest.raises(ValidationError, match="attributes: must be a dictionary"):
        check_attributes("attributes", ["k"])


def test_attribute_value_error_names_the_attribute():
    with pytest.raises(ValidationError) as err:
        check_attributes("attributes", {"ok": "1", "serial": "AB 12"})
    assert err.value.field == "attributes.serial"
    assert "'AB 12'" in err.value.rule


def test_attribute_count_by_thing_type():
    assert check_thing_attribute_count("attributes", 3, has_thing_type=False) == 3
    assert check_thing_attribute_count("attributes", 50, has_thing_type=True) == 50
    with pytest.raises(ValidationError) as err:
        check_thing_attribute_count("attributes", 4, has_thing_type=False)
    assert str(err.value) == "attributes: a thing without a thing type can have at most 3 attributes, got 4"
    with pytest.raises(ValidationError) as err:
        check_thing_attribute_count("attributes", 51, has_thing_type=True)
    assert str(err.value) == "attributes: a thing with a thing type can have at most 50 attributes, got 51"


def test_check_count_message():
    assert check_count("thing_groups", 10, 10, "a thing", "thing groups", verb="can be in") == 10
    with pytest.raises(ValidationError) as err:
        check_count("thing_groups", 11, 10, "a thing", "thing groups", verb="can be in")
    assert str(err.value) == "thing_groups: a thing can be in at most 10 thing groups, got 11"


def test_description_is_printable_ascii_up_to_2028():
    assert check_description("description", "") == ""
    assert check_description("description", "Light bulbs, 60 W ~ (v2) {x}") == "Light bulbs, 60 W ~ (v2) {x}"
    assert len(check_description("description", "d" * 2028)) == 2028
    for bad in ["line\nbreak", "tab\there", "caf\u00e9"]:
        with pytest.raises(ValidationError, match="description: must match"):
            check_description("description", bad)
    with pytest.raises(ValidationError, match="at most 2028 characters, got 2029"):
        check_description("description", "d" * 2029)


def test_unique_names_keep_order_and_drop_duplicates():
    assert check_unique_names("g", ["b", "a", "b"], check_thing_group_name) == ["b", "a"]
    with pytest.raises(ValidationError, match="g: must be a list"):
        check_unique_names("g", "a", check_thing_group_name)


def test_tags():
    assert check_tags("tags", {"cost-center": 4711, "Owner Name": "ops", "\u00e9quipe": "x", "k": ""}) == {
        "cost-center": "4711",
        "Owner Name": "ops",
        "\u00e9quipe": "x",
        "k": "",
    }
    with pytest.raises(ValidationError, match="reserved for AWS"):
        check_tags("tags", {"aws:cloudformation:stack": "x"})
    with pytest.raises(ValidationError, match="tags: tag key '#x' may hold"):
        check_tags("tags", {"#x": "y"})
    with pytest.raises(ValidationError, match=r"tags\.k: must be at most 256 characters"):
        check_tags("tags", {"k": "v" * 257})
    with pytest.raises(ValidationError, match="a resource can have at most 50 tags, got 51"):
        check_tags("tags", {f"k{i}": "v" for i in range(51)})


def test_positive_int():
    assert check_positive_int("wait_timeout", 0) == 0
    with pytest.raises(ValidationError, match="wait_timeout: must be zero or more, got -1"):
        check_positive_int("wait_timeout", -1)
    with pytest.raises(ValidationError, match="wait_timeout: must be an integer"):
        check_positive_int("wait_timeout", True)


CERT_ID = "2d7c5a0e9f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5"
CERT_ARN = f"arn:aws:iot:us-east-1:123456789012:cert/{CERT_ID}"


@pytest.mark.parametrize(
    "principal",
    [
        CERT_ARN,
        CERT_ID,
        CERT_ID.upper(),
        CERT_ARN.replace(":aws:", ":aws-cn:"),
        "us-east-1:0a1b2c3d-0000-1111-2222-abcdefabcdef",
    ],
)
def test_principal_accepts_certificate_arns_ids_and_cognito_identity_ids(principal):
    assert check_principal("principal", principal) == principal


@pytest.mark.parametrize(
    "principal",
    [
        "",
        "abc123",
        "../../x",
        CERT_ARN + "\n",
        CERT_ID + "\n",
        " " + CERT_ARN,
        CERT_ARN[:-1],
        CERT_ARN + "/../x",
        "arn:aws:iot:us-east-1:123456789012:cert/xyz",
        "arn:aws:iam::123456789012:role/x",
        "us-east-1:" + "a" * 60,
    ],
)
def test_principal_refusals_name_the_field_and_the_shapes(principal):
    with pytest.raises(ValidationError) as err:
        check_principal("principal", principal)
    assert err.value.field == "principal"
    assert "a certificate ARN (arn:PARTITION:iot:REGION:ACCOUNT:cert/ID)" in str(err.value)
    assert "64 hexadecimal characters" in str(err.value)


def test_non_string_principal_is_refused():
    with pytest.raises(ValidationError, match="principal: must be a string, got int"):
        check_principal("principal", 5)
