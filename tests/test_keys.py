"""Keys from the OS CSPRNG (issue 16 item 1): the results do not depend on them, the results
folder and the log hold none of them, and an outsider with the results folder, the scenario
file and the whole chain cannot re-derive them and unmask anything; deterministic keys only
when asked for, and then marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.chain.connection import connect
from sim.chain.keys import MarketKeys, PartyKeys
from sim.chain.masking import PrivacyError, decode_watts
from sim.cosim.world import run_scenario
from sim.privacy.observers import ChainReader
from sim.privacy.outsider import derivation_attack
from sim.results.writer import KEYS_DETERMINISTIC, KEYS_RANDOM, load_results, summarize
from sim.scenario import SCENARIOS_DIR, parse_scenario


def _quick(**chain) -> object:
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    data["chain"].update(dropout_probability=0.1, **chain)  # the recovery path too
    return parse_scenario(data, "quick (test)")


def _secrets(outcome) -> list[str]:
    agent = outcome.parts.homes_agent
    parties = [c.keys for c in agent.clients.values()]
    found = []
    for keys in parties:
        exported = keys.export()
        found += [exported["account"].removeprefix("0x"), exported["x25519"], exported["self"]]
    dso = outcome.parts.dso_agent.client
    found.append(dso.account.key.hex().removeprefix("0x"))
    found += [k.private_bytes_raw().hex() for k in dso._unmasker._private.values()]
    return found


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    runs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(name)
        chain = connect("revm")  # kept, so that the outsider can read the whole chain
        outcome = run_scenario(_quick(), out, progress=False, chain=chain)
        runs.append((out, chain, outcome))
    return runs


def test_results_are_identical_whatever_the_keys(two_runs) -> None:
    (out_a, _, run_a), (out_b, _, run_b) = two_runs
    addresses = [{c.address for c in r.parts.homes_agent.clients.values()} for r in (run_a, run_b)]
    assert not addresses[0] & addresses[1]  # different keys for every home
    a, b = load_results(out_a), load_results(out_b)
    slots = ["lambda", "hems_import_kw", "homes_submitted", "groups_revealed"]
    slots += [f"v_{m}_{ph}_pu" for m in ("min", "max") for ph in "abc"]
    for column in slots:
        np.testing.assert_array_equal(a["slots"][column], b["slots"][column], err_msg=column)
    home_columns = ["home", "submitted", "lmin_kw", "lmax_kw", "cap_kw", "import_kw"]
    for column in home_columns:
        np.testing.assert_array_equal(a["homes"][column], b["homes"][column], err_msg=column)
    np.testing.assert_array_equal(a["voltages"].vm_pu, b["voltages"].vm_pu)
    assert (~a["homes"].submitted).any()  # the dropout path was exercised
    assert summarize(out_a, (0.9, 1.1), 0.25)["keys"] == KEYS_RANDOM
    assert "debug_deterministic_keys: false" in (out_a / "scenario.yaml").read_text()


def test_no_key_in_the_results_folder(two_runs) -> None:
    out, _, outcome = two_runs[0]
    secrets = _secrets(outcome)
    assert len(secrets) > 3 * 22
    for path in out.iterdir():
        text = path.read_bytes().hex() + path.read_text(errors="ignore").lower()
        for secret in secrets:
            assert secret not in text, path.name


def test_an_outsider_with_results_scenario_and_chain_unmasks_nothing(two_runs) -> None:
    (out_a, chain_a, run_a), (out_b, _, run_b) = two_runs
    contract = run_a.parts.dso_agent.client.contract.address
    result = derivation_attack(out_a, ChainReader(chain_a.w3), contract)
    assert result.seeds_tried >= 3 * 101  # the scenario's seed +/- 50, three names
    assert result.submissions > 200 and result.sums == 36  # 3 groups x 12 rounds
    assert result.accounts_matched == result.keys_matched == 0
    assert result.submissions_unmasked == result.sums_unmasked == 0
    # two runs of the same scenario share no masks: the difference of two words of the same
    # home and round tells nothing about the difference of its bounds
    words = []
    for run in (run_a, run_b):
        chain = run.parts.chain
        contract_b = run.parts.dso_agent.client.contract
        by_sender = {}
        for record in chain.records:
            if record.label == "private.submitRange":
                tx = chain.w3.eth.get_transaction(record.tx_hash)
                _, args = contract_b.web3_contract.decode_function_input(tx["input"])
                by_sender[(record.sender, record.round)] = args["maskedLower"]
        index = {c.address: h for h, c in run.parts.homes_agent.clients.items()}
        words.append({(index[s], r): w for (s, r), w in by_sender.items()})
    homes = load_results(out_a)["homes"].set_index(["home", "round"])
    common = sorted(set(words[0]) & set(words[1]))
    assert len(common) > 200
    for key in common:  # same bounds in both runs (results identical), so x_a - x_b = 0
        assert abs(decode_watts(words[0][key] - words[1][key])) > 2**100
        assert homes.loc[key].submitted


def test_deterministic_keys_only_when_asked_for_and_marked(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="debugging only"):
        MarketKeys.debug_deterministic("quick/7", 3)
    a = MarketKeys.debug_deterministic("quick/7", 3, enabled=True)
    b = MarketKeys.debug_deterministic("quick/7", 3, enabled=True)
    assert a.deterministic and [h.address for h in a.homes] == [h.address for h in b.homes]
    random_keys = [MarketKeys.random(3), MarketKeys.random(3)]
    assert not random_keys[0].deterministic
    assert {h.address for h in random_keys[0].homes}.isdisjoint(
        h.address for h in random_keys[1].homes
    )
    shown = repr(random_keys[0].homes[0])
    assert all(secret not in shown for secret in random_keys[0].homes[0].export().values())
    copy = PartyKeys.from_export(random_keys[0].homes[0].export())
    assert copy.address == random_keys[0].homes[0].address
    assert copy.public_key == random_keys[0].homes[0].public_key
    # a run with deterministic keys says so in scenario.yaml and summary.json's figures ...
    data = yaml.safe_load((SCENARIOS_DIR / "quick.yaml").read_text())
    data["time"]["hours"] = 1
    data["chain"].update(debug_deterministic_keys=True, dropout_probability=0.1)
    chain = connect("revm")
    outcome = run_scenario(parse_scenario(data), tmp_path, progress=False, chain=chain)
    assert "debug_deterministic_keys: true" in (tmp_path / "scenario.yaml").read_text()
    assert summarize(tmp_path, (0.9, 1.1), 0.25)["keys"] == KEYS_DETERMINISTIC
    # ... and the control of the outsider test: its attack unmasks every submission and every
    # revealed sum of such a run (so that test fails if keys came from the scenario again)
    contract = outcome.parts.dso_agent.client.contract.address
    result = derivation_attack(tmp_path, ChainReader(chain.w3), contract)
    revealed = int(load_results(tmp_path)["groups"].revealed.sum())
    assert result.keys_matched == 23 and result.accounts_matched >= 23  # 22 homes + the DSO
    assert result.submissions > 70 and result.submissions_unmasked == result.submissions
    assert revealed > 0 and result.sums_unmasked == revealed
