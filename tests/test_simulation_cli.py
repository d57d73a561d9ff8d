"""`covalidator simulate consensus`: the figures, the exit codes, and replaying a failure from its seed."""

from __future__ import annotations

import json

from click.testing import CliRunner

from covalidator.runtime.cli import main

REQUIRED = {
    "instances",
    "decided",
    "agreement_violations",
    "validity_violations",
    "rounds_p50",
    "rounds_p99",
    "messages_per_instance",
}


def simulate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["simulate", "consensus", *args])
    return result.exit_code, result.stdout


def test_help_lists_the_command() -> None:
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0 and "consensus" in result.stdout
    assert "simulate" in CliRunner().invoke(main, ["--help"]).stdout


def test_json_summary() -> None:
    code, out = simulate("--nodes", "4", "--byzantine", "1", "--instances", "40", "--seed", "3", "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report) >= REQUIRED
    assert report["instances"] == report["decided"] == 40
    assert report["agreement_violations"] == report["validity_violations"] == 0
    assert 1 <= report["rounds_p50"] <= report["rounds_p99"] <= report["rounds_max"]
    assert sum(report["round_histogram"].values()) == 40
    assert report["messages_per_instance"] > 0


def test_text_summary_shows_the_histogram() -> None:
    code, out = simulate("--nodes", "7", "--crash", "2", "--partition", "--instances", "10", "--seed", "1")
    assert code == 0
    assert "decided-round histogram" in out and "messages per instance" in out and "round   1" in out


def test_bad_input_exits_2() -> None:
    code, _ = simulate("--nodes", "4", "--byzantine", "3", "--crash", "2")
    assert code == 2


def test_a_planted_bug_fails_with_the_seed_and_replays_from_it() -> None:
    code, out = simulate(
        "--byzantine", "1", "--plant-bug", "quorum-2f", "--instances", "20", "--seed", "6", "--json"
    )
    assert code == 1
    report = json.loads(out)
    assert report["agreement_violations"] >= 1
    failure = report["failures"][0]
    assert failure["seed"] == 6 and failure["prefix"]
    code, out = simulate(
        "--byzantine",
        "1",
        "--plant-bug",
        "quorum-2f",
        "--seed",
        "6",
        "--instance",
        str(failure["instance"]),
        "--json",
    )
    replay = json.loads(out)
    assert code == 1 and replay["instances"] == 1
    assert replay["failures"][0]["violation"] == failure["violation"]
    assert replay["failures"][0]["prefix"] == failure["prefix"]


def test_text_failure_report_prints_the_prefix_and_how_to_reproduce() -> None:
    code, out = simulate("--byzantine", "1", "--plant-bug", "quorum-2f", "--seed", "6", "--instance", "5")
    assert code == 1
    assert "shortest failing prefix" in out and "<-" in out
    assert (
        "reproduce: covalidator simulate consensus --nodes 4 --byzantine 1" in out and "--instance 5" in out
    )
