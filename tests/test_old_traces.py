"""Traces recorded by earlier versions still replay, action for action: a real node's trace from a
devnet run (`covalidator demo`, 4 nodes, 4 validators, 2 epochs of 3 s slots: every step of node 0,
with its header and the cluster lock) and a simulated node's trace with every duty kind and a
restart. Both were recorded before the model was reorganised; the model's behaviour, the event and
action vocabulary and the trace format must keep them replaying."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from covalidator.runtime.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "traces"


def test_a_devnet_nodes_trace_replays(tmp_path: Path) -> None:
    folder = tmp_path / "trace"
    folder.mkdir()
    with gzip.open(FIXTURES / "devnet-node0-trace-000001.jsonl.gz", "rb") as f:
        (folder / "trace-000001.jsonl").write_bytes(f.read())
    result = CliRunner().invoke(main, ["replay", str(folder)])
    assert result.exit_code == 0, result.output
    assert "replayed 1396 steps" in result.output
    assert "every action reproduced" in result.output


def test_a_simulated_nodes_trace_with_every_duty_kind_and_a_restart_replays() -> None:
    from covalidator.model.node.codec import decode
    from covalidator.model.node.events import Started
    from covalidator.model.node.replay import replay
    from tests.test_replay_model import SCENARIO_OF_THE_FIXTURE, node_config

    records: list[tuple[Any, list[Any]]] = []
    with gzip.open(FIXTURES / "sim-v4-e2-seed9-crash1-node2.jsonl.gz", "rt") as f:
        for line in f:
            obj = json.loads(line)
            records.append((decode(obj["event"]), [decode(a) for a in obj["actions"]]))
    lives: list[list[tuple[Any, list[Any]]]] = []
    for event, actions in records:
        if isinstance(event, Started):
            lives.append([])
        lives[-1].append((event, actions))
    assert len(records) == 2417 and len(lives) == 2
    kinds = {type(a).__name__ for _, actions in records for a in actions}
    assert {"Persist", "ReplyToVC", "SubmitToBN", "DutyOutcome", "FetchBeaconData"} <= kinds
    config = node_config(SCENARIO_OF_THE_FIXTURE, 2)
    for life in lives:
        outcome = replay(config, life)
        assert outcome.ok, (outcome.divergence and outcome.divergence.describe(), outcome.violations)
