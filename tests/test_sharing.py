"""The risk-share waterfall: worked examples and properties over random agreements."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simkit import from_dict
from simkit.book import build_book
from simkit.sharing import Cells, Waterfall, fee_flows

PARTIES = ["bank", "guarantor", "provincial", "national_fund", "local_gov"]


def _cells(n_cells: int, guaranteed: np.ndarray, regions: list[str] | None = None) -> Cells:
    return Cells(
        agreement=np.zeros(n_cells, dtype=np.intp),
        guarantor=(None,) * n_cells,
        region=tuple(regions or ["r"] * n_cells),
        segment=tuple(f"s{i}" for i in range(n_cells)),
        guaranteed=np.asarray(guaranteed, dtype=float),
        annualised=np.asarray(guaranteed, dtype=float),
    )


def _scenario(layers: list[dict[str, Any]]) -> Any:
    return from_dict({
        "parties": {p: {} for p in PARTIES},
        "agreements": [{"name": "a", "layers": layers}],
        "segments": [{"name": "s", "count": 1, "exposure": 1.0, "default_prob": 0.01,
                      "lgd": 1.0}],
    })


def test_4321_worked_example() -> None:
    """DOMAIN.md V4: EAD 1e6, PD 2 %, recovery 30 % -> 5,600 / 4,200 / 2,800 / 1,400."""
    s = _scenario([{"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.4},
                   {"party": "provincial", "share": 0.3}, {"party": "local_gov", "share": 0.1}])
    w = Waterfall.from_scenario(s, _cells(1, [1e6]))
    expected_default = np.array([[0.02 * 1e6]])
    alloc = w.apply(expected_default, 0.3 * expected_default)
    net = dict(zip(w.parties, alloc.net[0], strict=True))
    assert net["guarantor"] == pytest.approx(5600)
    assert net["provincial"] == pytest.approx(4200)
    assert net["bank"] == pytest.approx(2800)
    assert net["local_gov"] == pytest.approx(1400)
    assert net["national_fund"] == 0


def test_cap_binds_and_overflows_to_guarantor() -> None:
    s = _scenario([{"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.4},
                   {"party": "provincial", "share": 0.2},
                   {"party": "national_fund", "share": 0.2,
                    "cap": {"rate": 0.03, "overflow": "guarantor"}}])
    w = Waterfall.from_scenario(s, _cells(2, [50e6, 50e6]))
    # default rate 5 % on the pool: fund would pay 0.2 * 5e6 = 1e6, cap = 0.03*0.2*1e8 = 6e5
    covered = np.array([[2e6, 3e6], [1e6, 1e6]])
    alloc = w.apply(covered, np.zeros_like(covered))
    col = {p: i for i, p in enumerate(w.parties)}
    assert alloc.paid[0, col["national_fund"]] == pytest.approx(6e5)
    assert alloc.paid[0, col["guarantor"]] == pytest.approx(0.4 * 5e6 + 4e5)
    assert alloc.overflow[0, 0] == pytest.approx(4e5)
    assert alloc.cap_binding.tolist() == [[True], [False]]
    assert alloc.paid[1, col["national_fund"]] == pytest.approx(0.2 * 2e6)


def test_single_limit_excess_stays_with_lender(minimal) -> None:
    minimal["agreements"][0]["single_limit"] = 600_000
    s = from_dict(minimal)
    book = build_book(s)
    assert np.all(book.guaranteed == 600_000)
    w = Waterfall.from_scenario(s, book.cells)
    alloc = w.apply(np.array([[6e5]]), np.zeros((1, 1)), np.array([[4e5]]), np.array([[1e5]]))
    col = {p: i for i, p in enumerate(w.parties)}
    assert alloc.net[0, col["bank"]] == pytest.approx(0.2 * 6e5 + 3e5)


def test_recoveries_pro_rata_to_what_was_paid() -> None:
    s = _scenario([{"party": "bank", "share": 0.5},
                   {"party": "provincial", "share": 0.5,
                    "cap": {"rate": 0.01, "overflow": "guarantor"}}])
    w = Waterfall.from_scenario(s, _cells(1, [100.0]))
    alloc = w.apply(np.array([[10.0]]), np.array([[4.0]]))
    col = {p: i for i, p in enumerate(w.parties)}
    # provincial pays 0.5 (cap), guarantor 4.5 overflow, bank 5; recovery 40 % of each
    assert alloc.recovered[0, col["provincial"]] == pytest.approx(0.2)
    assert alloc.recovered[0, col["guarantor"]] == pytest.approx(1.8)
    assert alloc.recovered[0, col["bank"]] == pytest.approx(2.0)


def test_fees_follow_thresholds_and_shares(minimal) -> None:
    minimal["agreements"][0]["fees"] = [
        {"from": "borrower", "to": "guarantor", "rate": 0.01, "threshold": 5e6,
         "rate_above": 0.015},
        {"from": "provincial", "to": "national_fund", "rate": 0.003, "threshold": 5e6,
         "rate_above": 0.005, "on_share_of": "national_fund"},
    ]
    minimal["segments"] = [
        {"name": "small", "count": 1, "exposure": 1e6, "default_prob": 0.02, "lgd": 0.45},
        {"name": "big", "count": 1, "exposure": 8e6, "default_prob": 0.02, "lgd": 0.45},
    ]
    s = from_dict(minimal)
    book = build_book(s)
    flows = fee_flows(s, book.cell, book.cells, book.guaranteed, book.tenor_years)
    net = dict(zip(s.party_names, flows.net_income(s.party_names), strict=True))
    # DOMAIN.md V5: NFGF fee 600 on 1e6 and 8,000 on 8e6
    assert net["national_fund"] == pytest.approx(600 + 8000)
    assert net["guarantor"] == pytest.approx(0.01 * 1e6 + 0.015 * 8e6)
    assert net["provincial"] == pytest.approx(-(600 + 8000))
    assert flows.borrower_paid() == pytest.approx(sum(net.values()))


# ---------------------------------------------------------------------------------------
# properties over random agreements and losses
# ---------------------------------------------------------------------------------------
#: Relative rounding allowance on sums of gross amounts (a few thousand ulps: a waterfall
#: adds and subtracts up to a few dozen products per path, each rounding by one ulp of
#: amounts as large as the gross loss; an error of one share is many orders larger).
REL = 1e-12


def _close(actual: np.ndarray, expected: np.ndarray, gross: np.ndarray) -> None:
    """``|actual - expected| <= REL x gross`` elementwise (``gross`` broadcasts per path),
    plus the smallest normal float for inputs that underflow."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    slack = _slack(np.asarray(gross))
    bad = np.abs(actual - expected) > slack
    assert not bad.any(), (actual[bad], expected[bad], slack)


def _slack(gross: np.ndarray) -> np.ndarray:
    """The allowance for sums of ``gross`` amounts (see :data:`REL`)."""
    return REL * gross + np.finfo(np.float64).tiny


def _gross(*arrays: np.ndarray) -> np.ndarray:
    """Gross amount per path, shape (n_paths, 1): the sum of absolute cell amounts."""
    return sum(np.abs(a).sum(axis=1) for a in arrays)[:, None]


@st.composite
def agreements(draw: st.DrawFn) -> tuple[Waterfall, np.ndarray, np.ndarray, np.ndarray]:
    k = draw(st.integers(1, 5))
    parties = draw(st.permutations(PARTIES))[:k]
    weights = draw(st.lists(st.integers(0, 10), min_size=k, max_size=k).filter(
        lambda w: sum(w) > 0))
    shares = [w / sum(weights) for w in weights]
    shares[-1] = 1.0 - sum(shares[:-1])
    layers: list[dict[str, Any]] = []
    for p, sh in zip(parties, shares, strict=True):
        layer: dict[str, Any] = {"party": p, "share": max(sh, 0.0)}
        if draw(st.booleans()):
            overflow = draw(st.sampled_from([q for q in PARTIES if q != p]))
            layer["cap"] = {"rate": draw(st.floats(0.001, 0.2)), "overflow": overflow,
                            "pool": draw(st.sampled_from(["agreement", "region",
                                                          "segment"]))}
        layers.append(layer)
    total = sum(layer["share"] for layer in layers)
    if abs(total - 1) > 1e-9:
        layers[0]["share"] += 1 - total
    n_cells = draw(st.integers(1, 4))
    regions = draw(st.lists(st.sampled_from(["a", "b"]), min_size=n_cells,
                            max_size=n_cells))
    guaranteed = np.array(draw(st.lists(st.floats(1.0, 1e9), min_size=n_cells,
                                        max_size=n_cells)))
    w = Waterfall.from_scenario(_scenario(layers), _cells(n_cells, guaranteed, regions))
    n_paths = draw(st.integers(1, 4))
    frac = np.array(draw(st.lists(st.floats(0, 1), min_size=n_paths * n_cells,
                                  max_size=n_paths * n_cells))).reshape(n_paths, n_cells)
    covered = frac * guaranteed
    rec = np.array(draw(st.lists(st.floats(0, 1), min_size=n_cells, max_size=n_cells)))
    unc = np.array(draw(st.lists(st.floats(0, 1e6), min_size=n_paths * n_cells,
                                 max_size=n_paths * n_cells))).reshape(n_paths, n_cells)
    return w, covered, rec, unc


@given(agreements())
def test_money_is_conserved(case) -> None:
    w, covered, rec, unc = case
    alloc = w.apply(covered, covered * rec, unc, unc * 0.5)
    total = (covered * (1 - rec)).sum(axis=1) + (unc * 0.5).sum(axis=1)
    gross = _gross(covered, unc)[:, 0]
    _close(alloc.net.sum(axis=1), total, gross)
    _close(alloc.paid.sum(axis=1), (covered + unc).sum(axis=1), gross)


@given(agreements())
def test_losses_non_negative_and_caps_respected(case) -> None:
    w, covered, rec, _ = case
    alloc = w.apply(covered, covered * rec)
    slack = _slack(_gross(covered))
    assert np.all(alloc.paid >= -slack)
    assert np.all(alloc.net >= -slack)
    for k, spec in enumerate(w.caps):
        col = w.parties.index(spec.party)
        capped_paid = (covered[:, spec.cells] * w.capped_share[k, spec.cells]).sum(axis=1)
        own = np.minimum(capped_paid, spec.limit)
        # what the capped party paid through this layer never exceeds its limit
        assert np.all(own <= spec.limit * (1 + 1e-12))
        # and the party's total is its uncapped shares plus at most the limit, plus overflow
        uncapped = (covered * w.shares[:, col]).sum(axis=1)
        overflow_in = sum(
            alloc.overflow[:, j] for j, other in enumerate(w.caps)
            if w.parties[w.overflow_party[j, other.cells[0]]] == spec.party)
        assert np.all(alloc.paid[:, col] <= uncapped + spec.limit + overflow_in
                      + slack[:, 0])


@given(agreements(), st.floats(1.0, 3.0))
def test_more_loss_never_lowers_any_party_loss(case, factor) -> None:
    w, covered, rec, _ = case
    uniform_rec = np.full_like(rec, rec.mean())  # pro-rata recovery with one rate
    a = w.apply(covered, covered * uniform_rec)
    b = w.apply(covered * factor, covered * factor * uniform_rec)
    slack = _slack(_gross(covered * factor))
    assert np.all(b.net >= a.net - slack)
    assert np.all(b.paid >= a.paid - slack)


@given(agreements())
def test_without_caps_each_party_pays_its_share(case) -> None:
    w, covered, rec, _ = case
    uncapped = Waterfall(
        parties=w.parties, cells=w.cells, shares=w.shares + sum(
            (np.eye(len(w.parties))[w.capped_party[k]][None, :] * w.capped_share[k][:, None]
             for k in range(len(w.caps))), np.zeros_like(w.shares)),
        lender=w.lender, capped_share=np.zeros((0, len(w.cells))),
        capped_party=np.zeros(0, dtype=np.intp),
        overflow_party=np.zeros((0, len(w.cells)), dtype=np.intp),
        pool_of_cell=np.zeros((0, len(w.cells)), dtype=np.intp), pool_limit=[], caps=[])
    alloc = uncapped.apply(covered, covered * rec)
    expected = np.einsum("nc,cp->np", covered * (1 - rec), uncapped.shares)
    _close(alloc.net, expected, _gross(covered))
    assert math.isclose(float(uncapped.shares.sum(axis=1).max()), 1.0, rel_tol=1e-12)


def test_capped_guarantor_layer_has_one_cap_per_guarantor() -> None:
    """Each county guarantor's cap is computed on its own loans, not the whole pool."""
    s = from_dict({
        "parties": {"bank": {}, "g1": {"kind": "guarantor"}, "g2": {"kind": "guarantor"},
                    "provincial": {}},
        "agreements": [{"name": "a", "layers": [
            {"party": "bank", "share": 0.2},
            {"party": "g1", "share": 0.5, "cap": {"rate": 0.04, "overflow": "bank"}},
            {"party": "provincial", "share": 0.3}]}],
        "segments": [{"name": "s", "count": 1, "exposure": 1.0, "default_prob": 0.01,
                      "lgd": 1.0}],
    })
    cells = Cells(agreement=np.zeros(2, dtype=np.intp), guarantor=("g1", "g2"),
                  region=("r", "r"), segment=("s1", "s2"), guaranteed=np.array([1000.0, 1000.0]),
                  annualised=np.array([1000.0, 1000.0]))
    w = Waterfall.from_scenario(s, cells)
    assert [c.limit for c in w.caps] == [20.0, 20.0]
    alloc = w.apply(np.array([[1000.0, 1000.0]]), np.zeros((1, 2)))
    col = {p: i for i, p in enumerate(w.parties)}
    assert alloc.paid[0, col["g1"]] == pytest.approx(20.0)
    assert alloc.paid[0, col["g2"]] == pytest.approx(20.0)
    assert alloc.paid[0, col["bank"]] == pytest.approx(400 + 2 * 480)
    assert alloc.paid.sum() == pytest.approx(2000.0)


def test_by_cell_sums_to_party_totals(minimal) -> None:
    s = _scenario([{"party": "bank", "share": 0.2}, {"party": "guarantor", "share": 0.5},
                   {"party": "provincial", "share": 0.3,
                    "cap": {"rate": 0.02, "overflow": "guarantor", "pool": "region"}}])
    w = Waterfall.from_scenario(s, _cells(3, [100.0, 200.0, 300.0], ["a", "a", "b"]))
    rng = np.random.default_rng(3)
    covered = rng.uniform(0, 30, (5, 3))
    unc = rng.uniform(0, 5, (5, 3))
    alloc = w.apply(covered, covered * 0.3, unc, unc * 0.1, by_cell=True)
    assert alloc.by_cell is not None
    _close(alloc.by_cell.sum(axis=1), alloc.net, np.abs(alloc.by_cell).sum(axis=1))


@pytest.mark.slow
@settings(max_examples=2000)
@given(agreements())
def test_money_is_conserved_over_many_agreements(case) -> None:
    """The conservation property over 2,000 generated agreements (``-m slow``)."""
    test_money_is_conserved.hypothesis.inner_test(case)
    test_without_caps_each_party_pays_its_share.hypothesis.inner_test(case)
