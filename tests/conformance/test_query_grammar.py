"""Our offer-query parser (providers/query.py) against the official CLI's own
(`vastai.api.query.parse_query` with its field tables, as `vastai search offers` calls it), on
queries from vast.ai's docs and the CLI's help. Same JSON, or a deliberate, listed difference."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from providers.errors import QueryError
from providers.query import parse_order, parse_query
from tests.conformance.conftest import PYTHON

HELPER = Path(__file__).with_name("cli_parse.py")

SAME = [
    # the CLI's `search offers --help` examples
    "reliability > 0.99 num_gpus>=4",
    "compute_cap > 610 total_flops < 5",
    "reliability > 0.99  num_gpus>=4 verified=False",
    "gpu_name=RTX_3090 num_gpus=1",
    "gpu_name=RTX_4090 num_gpus>=2 inet_down>200",
    "num_gpus=1 gpu_name in [RTX_3090,RTX_4090]",
    "gpu_name notin [RTX_3060,GTX_1080]",
    "cpu_ram>64 disk_space>100",
    "gpu_ram>=20",
    "gpu_ram>=24 dph<0.5",
    "dph_total<=0.4 reliability>0.98",
    "geolocation=US",
    "geolocation in [US,CA,DE]",
    "datacenter=True",
    "static_ip=true",
    "direct_port_count>=8",
    "cuda_vers>=12.1",
    "cuda_max_good>=12.4",
    "compute_cap>=800",
    "inet_up>=100 inet_down>=500",
    "pcie_bw>=10",
    "disk_bw>1000",
    "dlperf>=20",
    "dlperf_per_dphtotal>=50",
    "flops_usd>100",
    "total_flops>=80",
    "gpu_mem_bw>=900",
    "gpu_total_ram>=48",
    "cpu_cores>=16",
    "cpu_cores_effective>=8",
    "cpu_ghz>=3",
    "num_gpus=2 gpu_frac=1",
    "rentable=any",
    "verified=any",
    "external=any rentable=True",
    "reliability>0.9 reliability>0.95",
    "num_gpus!=1",
    "num_gpus gte 2",
    "num_gpus lt 4",
    "gpu_name eq RTX_A6000",
    "gpu_name neq RTX_A6000",
    "cpu_arch=amd64",
    "ubuntu_version>=22.04",
    "host_id=1276",
    "machine_id in [700,28909]",
    "vms_enabled=False",
    "has_avx=1",
    "bw_nvlink>100",
    "gpu_display_active=False",
    "  num_gpus=1   gpu_ram>=20  ",
    # every operator spelling, wildcards, quoting, units, aliases, repeats (vast-api.md §2.4)
    "num_gpus >= 2", "num_gpus==2", "num_gpus neq 1", "num_gpus noteq 1", "num_gpus not eq 1",
    "num_gpus not in [1,2]", "num_gpus nin [1]", "num_gpus notin [3]", "total_flops gte 100",
    "gpu_ram lte 48", "verified=*", "verified=?", 'rentable="any"', 'gpu_name="RTX 4090"',
    "gpu_name=H100_SXM", "gpu_name in [RTX_4090]", "num_gpus in [1,2,4]", "duration>=3",
    "cpu_ram >= 64", "dph <= 0.5", "display_active=false", "dlperf_usd>10", "min_bid<0.2",
    "driver_version>=535.86.05", "driver_version=535", "cuda_vers>=12 cuda_max_good<13",
    "gpu_ram>=20 gpu_ram<=80", "gpu_ram>=20 gpu_ram>=40", "static_ip=None", "static_ip=null",
    "rentable=True verified=false", "reliability>=0.99 geolocation notin [CN,RU]",
    "verification=verified", "pci_gen>=4", "id=12345",
    # list items stay strings in the CLI: true/false/None become JSON only as a single value
    "verified in [true,false]", "static_ip notin [None]",
    "static_ip in [true,false]",  # list items stay strings (found by the referee)
]

# Queries both parsers refuse (the CLI with a ValueError, ours with a QueryError).
BOTH_REFUSE = ["verified!=any", "gpu_name=RTX_4090 num_gpus", "num_gpus>"]

# Queries the CLI crashes on and ours sends, on purpose: what ours sends, and why.
WE_ACCEPT = {
    "gpu_ram in [24,48]": ({"in": [24000.0, 48000.0]}, "TypeError",
                           "a list on a multiplied field: each item multiplied"),
    "driver_version in [535.86.05,550.54.14]": ({"in": [535086005, 550054014]},
                                                "AttributeError",
                                                "dotted versions in a list: each converted"),
}

# Queries where we differ on purpose: ours refuses, the CLI sends something the server then
# ignores or misreads (a filter silently dropped rents the wrong machine, and it bills).
REFUSED = {
    # query: (what the CLI makes of it, checked below; why we refuse instead)
    "nosuchfield>3": ({"nosuchfield": {"gt": "3"}},
                      "an unknown field: the CLI warns and sends it, the server ignores it"),
    "gpu_nmae=RTX_3090": ({"gpu_nmae": {"eq": "RTX 3090"}},
                          "a typo of a field: the same; we suggest gpu_name"),
    "num_gpus= gpu_ram>=20": ({"num_gpus": {"eq": "gpu ram>=20"}},
                              "a missing value: the CLI swallows the next comparison"),
    "gpu_ram>=lots": ("ValueError", "a non-number for a multiplied field: the CLI crashes"),
    "driver_version>=535.x": ("ValueError", "a malformed driver version: the CLI crashes"),
    "nosuchfield=any": ({}, "an unknown field, even dropped: the CLI drops it silently, a typo"
                            " of a field you meant to keep"),
}

# Orders the CLI turns into a field the server does not have; ours refuses.
ORDERS_REFUSED = {"-dph+": ([["-dph", "asc"]], "signs at both ends: the CLI keeps one in the name"),
                  "dph++": ([["dph_total", "asc"]],
                            "a doubled sign: the CLI strips both; ours takes one sign at one"
                            " end, the way the CLI's help writes it")}

ORDERS = ["dph+", "dph-", "score-", "-score", "+dph_total", "dlperf_per_dphtotal-",
          "num_gpus-,dph+", "reliability-,score-", "inet_down-", "gpu_ram-,dph_total",
          "dph", "score", " dph , score- ", "flops_usd-", "cuda_vers-"]


@pytest.fixture(scope="module")
def cli_parsed(referee: Path) -> dict[str, list]:
    spec = {"queries": SAME + list(REFUSED) + BOTH_REFUSE + list(WE_ACCEPT),
            "orders": ORDERS + list(ORDERS_REFUSED)}
    proc = subprocess.run([str(PYTHON), str(HELPER)], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def test_the_table_is_big_enough() -> None:
    assert len(SAME) + len(REFUSED) + len(BOTH_REFUSE) + len(WE_ACCEPT) >= 40


@pytest.mark.parametrize("index", range(len(SAME)), ids=SAME)
def test_we_send_what_the_cli_sends(cli_parsed: dict[str, list], index: int) -> None:
    theirs = cli_parsed["queries"][index]
    assert "error" not in theirs, theirs
    assert json.loads(json.dumps(parse_query(SAME[index]))) == theirs


@pytest.mark.parametrize("query", list(REFUSED), ids=list(REFUSED))
def test_we_refuse_what_the_cli_would_send_wrong(cli_parsed: dict[str, list], query: str):
    theirs = cli_parsed["queries"][len(SAME) + list(REFUSED).index(query)]
    expected, _why = REFUSED[query]
    if isinstance(expected, dict):  # the CLI sends it: the field and value shown here
        assert {k: theirs.get(k) for k in expected} == expected, theirs
    else:  # the CLI raises
        assert theirs["error"].startswith(expected), theirs
    with pytest.raises(QueryError) as err:
        parse_query(query)
    assert err.value.token and err.value.token in query  # ours names what is wrong


@pytest.mark.parametrize("index", range(len(ORDERS)), ids=ORDERS)
def test_orders_are_the_clis(cli_parsed: dict[str, list], index: int) -> None:
    assert parse_order(ORDERS[index]) == cli_parsed["orders"][index]


@pytest.mark.parametrize("query", BOTH_REFUSE, ids=BOTH_REFUSE)
def test_both_refuse(cli_parsed: dict[str, list], query: str) -> None:
    theirs = cli_parsed["queries"][len(SAME) + len(REFUSED) + BOTH_REFUSE.index(query)]
    assert theirs["error"].startswith("ValueError"), theirs
    with pytest.raises(QueryError):
        parse_query(query)


@pytest.mark.parametrize("query", list(WE_ACCEPT), ids=list(WE_ACCEPT))
def test_we_send_what_the_cli_crashes_on(cli_parsed: dict[str, list], query: str) -> None:
    offset = len(SAME) + len(REFUSED) + len(BOTH_REFUSE)
    theirs = cli_parsed["queries"][offset + list(WE_ACCEPT).index(query)]
    ours, crash, _why = WE_ACCEPT[query]
    assert theirs["error"].startswith(crash), theirs
    field = query.split(" ", 1)[0]
    assert parse_query(query)[field] == ours


@pytest.mark.parametrize("order", list(ORDERS_REFUSED), ids=list(ORDERS_REFUSED))
def test_we_refuse_orders_the_cli_garbles(cli_parsed: dict[str, list], order: str) -> None:
    theirs = cli_parsed["orders"][len(ORDERS) + list(ORDERS_REFUSED).index(order)]
    assert theirs == ORDERS_REFUSED[order][0]
    with pytest.raises(QueryError):
        parse_order(order)
