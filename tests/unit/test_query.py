"""The offer query grammar against the examples of vast-api.md §2.2-§2.5 and its pitfalls."""

from __future__ import annotations

import pytest

from providers.errors import ConfigError, QueryError
from providers.query import DEFAULT_FILTERS, build_search, parse_order, parse_query
from providers.settings import DEFAULT_QUERY

DEFAULTS = {"verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True}}


def test_full_example_of_section_2_2() -> None:
    """The exact JSON vast-api.md §2.2 shows for the CLI, order/type/storage included."""
    text = (
        "gpu_ram>=20 reliability>0.98 compute_cap>=700 inet_down>=200 disk_space>=50 "
        "num_gpus=1 gpu_name=RTX_4090"
    )
    filters = {
        **DEFAULTS,
        "gpu_ram": {"gte": 20000.0},
        "reliability": {"gt": "0.98"},
        "compute_cap": {"gte": "700"},
        "inet_down": {"gte": "200"},
        "disk_space": {"gte": "50"},
        "num_gpus": {"eq": "1"},
        "gpu_name": {"eq": "RTX 4090"},
    }
    assert parse_query(text) == filters
    body = build_search(text, "score-", disk_gb=5.0)
    assert body == {
        **filters,
        "order": [["score", "desc"]],
        "type": "on-demand",
        "allocated_storage": 5.0,
    }
    assert isinstance(body["allocated_storage"], float)


def test_default_query_of_the_stack() -> None:
    assert parse_query(DEFAULT_QUERY) == {
        **DEFAULTS,
        "reliability": {"gt": "0.98"},
        "gpu_ram": {"gte": 20000.0},
        "compute_cap": {"gte": "700"},
        "inet_down": {"gte": "200"},
        "disk_space": {"gte": "50"},
    }


def test_defaults_are_the_current_cli_ones_and_come_first() -> None:
    assert DEFAULT_FILTERS == DEFAULTS
    assert "rented" not in parse_query("")  # dropped by the CLI in 2026-05 (PR #394)
    assert list(parse_query("num_gpus=1"))[:3] == ["verified", "external", "rentable"]


def test_no_default_sends_only_the_query() -> None:  # the CLI's -n/--no-default
    assert parse_query("num_gpus=1", defaults=False) == {"num_gpus": {"eq": "1"}}
    assert parse_query("   ", defaults=False) == {}


def test_parse_query_does_not_share_the_defaults() -> None:
    parse_query("")["verified"]["eq"] = "changed"
    assert parse_query("")["verified"] == {"eq": True}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # whitespace around symbolic operators is optional
        ("gpu_ram >= 20", {"gpu_ram": {"gte": 20000.0}}),
        ("gpu_ram>=20", {"gpu_ram": {"gte": 20000.0}}),
        ("gpu_ram>= 20", {"gpu_ram": {"gte": 20000.0}}),
        ("gpu_ram  >=   20", {"gpu_ram": {"gte": 20000.0}}),
        # every operator spelling of §2.4
        ("num_gpus>=2", {"num_gpus": {"gte": "2"}}),
        ("num_gpus gte 2", {"num_gpus": {"gte": "2"}}),
        ("num_gpus>2", {"num_gpus": {"gt": "2"}}),
        ("num_gpus gt 2", {"num_gpus": {"gt": "2"}}),
        ("num_gpus<=2", {"num_gpus": {"lte": "2"}}),
        ("num_gpus lte 2", {"num_gpus": {"lte": "2"}}),
        ("num_gpus<2", {"num_gpus": {"lt": "2"}}),
        ("num_gpus lt 2", {"num_gpus": {"lt": "2"}}),
        ("num_gpus=2", {"num_gpus": {"eq": "2"}}),
        ("num_gpus==2", {"num_gpus": {"eq": "2"}}),
        ("num_gpus eq 2", {"num_gpus": {"eq": "2"}}),
        ("num_gpus!=2", {"num_gpus": {"neq": "2"}}),
        ("num_gpus neq 2", {"num_gpus": {"neq": "2"}}),
        ("num_gpus noteq 2", {"num_gpus": {"neq": "2"}}),
        ("num_gpus not eq 2", {"num_gpus": {"neq": "2"}}),
        ("geolocation in [US,CA]", {"geolocation": {"in": ["US", "CA"]}}),
        ("geolocation notin [US,CA]", {"geolocation": {"notin": ["US", "CA"]}}),
        ("geolocation not in [US,CA]", {"geolocation": {"notin": ["US", "CA"]}}),
        ("geolocation nin [US,CA]", {"geolocation": {"notin": ["US", "CA"]}}),
        # geolocation with = and != (§2.4)
        ("geolocation=KR", {"geolocation": {"eq": "KR"}}),
        ("geolocation!=KR", {"geolocation": {"neq": "KR"}}),
    ],
)
def test_operators(text: str, expected: dict[str, object]) -> None:
    assert parse_query(text, defaults=False) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # aliases (offers_alias); reliability is NOT aliased to reliability2
        ("cuda_vers>=12.4", {"cuda_max_good": {"gte": "12.4"}}),
        ("display_active=false", {"gpu_display_active": {"eq": False}}),
        ("dlperf_usd>100", {"dlperf_per_dphtotal": {"gt": "100"}}),
        ("dph<0.5", {"dph_total": {"lt": "0.5"}}),
        ("flops_usd>10", {"flops_per_dphtotal": {"gt": "10"}}),
        ("reliability>0.99", {"reliability": {"gt": "0.99"}}),
        # multipliers: x1000 (not 1024) for RAM, days -> seconds; always floats
        ("cpu_ram>=64", {"cpu_ram": {"gte": 64000.0}}),
        ("gpu_ram>=24", {"gpu_ram": {"gte": 24000.0}}),
        ("gpu_total_ram>=80", {"gpu_total_ram": {"gte": 80000.0}}),
        ("duration>=3", {"duration": {"gte": 259200.0}}),
        ("duration>=0.5", {"duration": {"gte": 43200.0}}),
        ("gpu_ram in [24,48]", {"gpu_ram": {"in": [24000.0, 48000.0]}}),
        # everything else passes through unconverted, as strings
        ("disk_space>=50", {"disk_space": {"gte": "50"}}),
        ("compute_cap>=860", {"compute_cap": {"gte": "860"}}),
        ("inet_up>100", {"inet_up": {"gt": "100"}}),
        ("cpu_arch=amd64", {"cpu_arch": {"eq": "amd64"}}),
        # driver_version dotted -> MMMmmmppp (an int, like the CLI)
        ("driver_version>=535.86.05", {"driver_version": {"gte": 535086005}}),
        ("driver_version=550.1.2", {"driver_version": {"eq": 550001002}}),
        ("driver_version>=535086005", {"driver_version": {"gte": "535086005"}}),
        ("driver_version in [535.86.05,550.1.2]",
         {"driver_version": {"in": [535086005, 550001002]}}),
        # underscores -> spaces; surrounding quotes removed; quotes keep spaces
        ("gpu_name=RTX_4090", {"gpu_name": {"eq": "RTX 4090"}}),
        ('gpu_name="RTX 4090"', {"gpu_name": {"eq": "RTX 4090"}}),
        ('gpu_name="RTX_4090"', {"gpu_name": {"eq": "RTX 4090"}}),
        ("gpu_name in [RTX_4090, RTX_3090]", {"gpu_name": {"in": ["RTX 4090", "RTX 3090"]}}),
        ('gpu_name in ["RTX 4090","A100 PCIE"]', {"gpu_name": {"in": ["RTX 4090", "A100 PCIE"]}}),
        ("gpu_name in [H100_SXM]", {"gpu_name": {"in": ["H100 SXM"]}}),
        # true/True/false/False/None/null
        ("static_ip=true", {"static_ip": {"eq": True}}),
        ("static_ip=True", {"static_ip": {"eq": True}}),
        ("datacenter=false", {"datacenter": {"eq": False}}),
        ("datacenter=False", {"datacenter": {"eq": False}}),
        ("cluster_id=None", {"cluster_id": {"eq": None}}),
        # ...but list items stay strings, as the CLI sends them (tests/conformance)
        ("static_ip in [true,False]", {"static_ip": {"in": ["true", "False"]}}),
        ("cluster_id notin [None,null]", {"cluster_id": {"notin": ["None", "null"]}}),
        ("cluster_id=null", {"cluster_id": {"eq": None}}),
        ("static_ip=TRUE", {"static_ip": {"eq": "TRUE"}}),  # only the CLI's two spellings
        # several ops on one field merge; the same op again wins
        ("gpu_ram>=24 gpu_ram<=48", {"gpu_ram": {"gte": 24000.0, "lte": 48000.0}}),
        ("num_gpus>=2 num_gpus<=8", {"num_gpus": {"gte": "2", "lte": "8"}}),
        ("dph<1 dph_total>0.1", {"dph_total": {"lt": "1", "gt": "0.1"}}),
        ("num_gpus=1 num_gpus=2", {"num_gpus": {"eq": "2"}}),
        # stray list punctuation is stripped from both ends, like the CLI
        ("num_gpus=1,", {"num_gpus": {"eq": "1"}}),
        # tabs and newlines (a multi-line YAML value) count as spaces
        ("num_gpus=1\n\tgpu_name=A100\n", {"num_gpus": {"eq": "1"}, "gpu_name": {"eq": "A100"}}),
    ],
)  # fmt: skip
def test_values(text: str, expected: dict[str, object]) -> None:
    assert parse_query(text, defaults=False) == expected


@pytest.mark.parametrize("wildcard", ["any", "*", "?"])
def test_wildcard_with_equals_drops_the_field_defaults_included(wildcard: str) -> None:
    filters = parse_query(f"verified={wildcard} num_gpus=1 num_gpus eq {wildcard}")
    assert filters == {"external": {"eq": False}, "rentable": {"eq": True}}


def test_wildcard_on_an_alias_drops_the_real_field() -> None:
    assert parse_query("dph_total<1 dph=any", defaults=False) == {}


def test_wildcard_then_a_value_sets_it_again() -> None:
    assert parse_query("verified=any verified=false")["verified"] == {"eq": False}


def test_quoted_any_is_sent_literally() -> None:
    # how to switch off the server's own rentable=true default (vast-api.md §2.3, issue #391)
    assert parse_query('rentable="any"')["rentable"] == {"eq": "any"}


@pytest.mark.parametrize(
    ("text", "token", "position", "reason"),
    [
        ("gpu_ram=>20", "=>", 7, "unknown operator"),
        ("num_gpus=1 gpu_ram => 20", "=>", 19, "unknown operator"),
        ("num_gpus=1 gpu_ram ~ 20", "~", 19, "missing operator between 'gpu_ram' and '~'"),
        ("num_gpus=1 ~gpu_ram>20", "~gpu_ram>20", 11, "unconsumed text"),
        (">=20", ">=20", 0, "unconsumed text"),
        ("num_gpus=1 , gpu_ram>=20", ",", 11, "unconsumed text"),
        ("gpu_name=RTX 4090", "4090", 13, "needs quotes or underscores"),
        ("verified true", "true", 9, "missing operator"),
        ("num_gpus>=", ">=", 8, "missing value"),
        ("num_gpus eq", "eq", 9, "missing operator between 'num_gpus' and 'eq'"),
        ("vram 20", "20", 5, "missing operator"),
        ("gpu_name in []", "[]", 12, "empty list"),
        ("gpu_name=,", ",", 9, "empty value"),
        ("num_gpus>=any", "any", 10, "Wildcard only makes sense with equals"),
        ("num_gpus != *", "*", 12, "Wildcard only makes sense with equals"),
        ("gpu_ramm>=20", "gpu_ramm", 0, "did you mean 'gpu_ram'?"),
        ("num_gpus=1 vram>=20", "vram", 11, "unknown field"),
        ("gpu_ram>=lots", "lots", 9, "gpu_ram needs a number"),
        ("cpu_ram>=nan", "nan", 9, "cpu_ram needs a number"),
        ("driver_version>=535.86", "535.86", 16, "driver_version must look like"),
        ("num_gpus= gpu_ram>=20", "gpu_ram>=20", 10, "value contains an operator"),
        ('  gpu_name="RTX 4090', "4090", 16, "needs quotes or underscores"),
    ],
)
def test_errors_name_token_and_position(text: str, token: str, position: int, reason: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text)
    err = info.value
    assert (err.token, err.position, err.query) == (token, position, text)
    assert text[position:].startswith(token)
    message = str(err)
    assert reason in message
    assert f"{token!r} at position {position}" in message
    assert text in message  # the whole query
    assert message.splitlines()[-1] == "  " + " " * position + "^"


def test_unknown_field_lists_known_fields() -> None:
    with pytest.raises(QueryError) as info:
        parse_query("gpu_count=1")
    assert "known fields:" in str(info.value)
    assert "num_gpus" in str(info.value)
    assert "dlperf_usd" in str(info.value)


def test_query_error_is_a_config_error_and_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        parse_query("gpu_ram=>20")
    assert isinstance(info.value, ConfigError)
    assert info.value.key == "vast-gpu:query"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dph+", [["dph_total", "asc"]]),  # the example of §2.5
        ("num_gpus-,dlperf_usd-", [["num_gpus", "desc"], ["dlperf_per_dphtotal", "desc"]]),
        ("score-", [["score", "desc"]]),  # the CLI's default
        ("-score", [["score", "desc"]]),
        ("+dph", [["dph_total", "asc"]]),
        ("dph", [["dph_total", "asc"]]),
        (" num_gpus- , dph ", [["num_gpus", "desc"], ["dph_total", "asc"]]),
        ("flops_usd-,cuda_vers", [["flops_per_dphtotal", "desc"], ["cuda_max_good", "asc"]]),
    ],
)
def test_parse_order(text: str, expected: list[list[str]]) -> None:
    assert parse_order(text) == expected


@pytest.mark.parametrize(
    ("text", "token", "position"),
    [
        ("", "", 0),
        ("dph+,", "", 5),
        ("num_gpus-, ,dph", "", 11),
        ("+dph-", "+dph-", 0),
        ("dph+, gpu ram-", "gpu ram-", 6),
        ("dph++", "dph++", 0),
    ],
)
def test_parse_order_errors(text: str, token: str, position: int) -> None:
    with pytest.raises(QueryError) as info:
        parse_order(text)
    assert (info.value.token, info.value.position) == (token, position)
    assert info.value.key == "vast-gpu:order"


def test_build_search_full_body() -> None:
    body = build_search(
        "num_gpus=1", "dph+", disk_gb=60, offer_type="interruptible", limit=10, max_price=0.5
    )
    assert body == {
        **DEFAULTS,
        "num_gpus": {"eq": "1"},
        "dph_total": {"lte": 0.5},
        "order": [["dph_total", "asc"]],
        "type": "bid",
        "limit": 10,
        "allocated_storage": 60.0,
    }


def test_build_search_price_cap_merges_with_the_query() -> None:
    looser = build_search("dph>0.1 dph<=2", "dph+", disk_gb=10, max_price=0.5)
    assert looser["dph_total"] == {"gt": "0.1", "lte": 0.5}
    stricter = build_search("dph<=0.3", "dph+", disk_gb=10, max_price=0.5)
    assert stricter["dph_total"] == {"lte": "0.3"}


def test_build_search_takes_parsed_input_without_changing_it() -> None:
    filters = {"num_gpus": {"eq": "1"}}
    body = build_search(filters, [["score", "desc"]], disk_gb=8, max_price=1)
    assert body["num_gpus"] == {"eq": "1"} and body["dph_total"] == {"lte": 1.0}
    assert body["order"] == [["score", "desc"]]
    assert "verified" not in body  # parsed input is used as given
    assert filters == {"num_gpus": {"eq": "1"}}


@pytest.mark.parametrize("offer_type", ["on-demand", "ondemand", "bid", "reserved"])
def test_build_search_offer_types(offer_type: str) -> None:
    expected = "on-demand" if offer_type == "ondemand" else offer_type
    assert build_search("", "dph+", disk_gb=5, offer_type=offer_type)["type"] == expected


def test_build_search_without_defaults() -> None:
    body = build_search("num_gpus=1", "dph+", disk_gb=5, defaults=False)
    assert body == {
        "num_gpus": {"eq": "1"},
        "order": [["dph_total", "asc"]],
        "type": "on-demand",
        "allocated_storage": 5.0,
    }


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"disk_gb": 0}, "vast-gpu:disk"),
        ({"disk_gb": -5}, "vast-gpu:disk"),
        ({"disk_gb": "60"}, "vast-gpu:disk"),
        ({"disk_gb": True}, "vast-gpu:disk"),
        ({"disk_gb": float("inf")}, "vast-gpu:disk"),
        ({"disk_gb": 5, "max_price": 0}, "vast-gpu:maxPricePerHour"),
        ({"disk_gb": 5, "max_price": float("nan")}, "vast-gpu:maxPricePerHour"),
        ({"disk_gb": 5, "offer_type": "spot"}, "offer_type"),
        ({"disk_gb": 5, "limit": 0}, "limit"),
        ({"disk_gb": 5, "limit": 2.5}, "limit"),
    ],
)
def test_build_search_rejects_bad_settings(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_search("", "dph+", **kwargs)  # type: ignore[arg-type]
    assert info.value.key == key
    assert key in str(info.value)


def test_list_items_stay_strings_as_the_cli_sends_them() -> None:
    """The CLI maps true/false/None only for a single value; a list's items stay strings."""
    assert parse_query("verified in [true,false]", defaults=False) == {
        "verified": {"in": ["true", "false"]}
    }
    assert parse_query("static_ip notin [None,null]", defaults=False) == {
        "static_ip": {"notin": ["None", "null"]}
    }
    assert parse_query("verified=true", defaults=False) == {"verified": {"eq": True}}
