"""The bench imports and its report renders from fixture results (no benchmark runs here)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from bench import report
from bench.common import percentile
from bench.profile import summarise

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "module",
    ["__main__", "lb_stream", "lb_small", "lb_routing", "gateway_ingest", "pipeline", "redis_cost"],
)
def test_scenarios_import(module):
    importlib.import_module(f"bench.{module}")


def test_report_rewrites_only_the_generated_section(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nprose kept\n\n{report.BEGIN}\nold\n{report.END}\ntail\n")
    section = report.write(doc, FIXTURES)
    text = doc.read_text()
    assert text.startswith("# Performance\n\nprose kept\n")
    assert text.endswith(f"{report.END}\ntail\n")
    assert "old" not in text and section in text
    for heading in (
        "### Targets",
        "### 1. LB streaming",
        "### 4. Gateway ingest",
        "### 5. Pipeline",
    ):
        assert heading in section


def test_report_of_nothing_says_so(tmp_path):
    doc = tmp_path / "performance.md"
    assert "No results yet" in report.write(doc, tmp_path)


def test_profile_summary_shares():
    collapsed = (
        "main (a.py:1);sign (bittensor/http_auth.py:9) 3\n"
        "main (a.py:1);execute (redis/client.py:5) 1\n"
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 4
    shares = {c["name"]: c["share"] for c in summary["categories"]}
    assert shares["request signing (btauth sign)"] == 0.75


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
