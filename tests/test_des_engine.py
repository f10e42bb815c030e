"""Tests of the DES engine's fast paths (simkit.des.agenda, the sparse limit sums and the
binding-column checks of simkit.des.limits): each must give exactly what the plain
formulation gives."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import simpy

import simkit
from simkit.des import simulate
from simkit.des.agenda import Agenda, timeout_at
from simkit.des.limits import Limits
from simkit.des.model import Model
from tests.test_des import BASE, checked
from tests.test_des_mechanisms import LINED, identical


def test_agenda_interleaves_with_simpy_in_time_order() -> None:
    env = simpy.Environment()
    agenda = Agenda(env)
    seen: list[tuple[str, float]] = []

    def sim(name: str, delay: float) -> None:
        env.timeout(delay).callbacks.append(lambda _e: seen.append((name, env.now)))

    def entry(t: float, name: str) -> None:
        seen.append((name, t))
        if name == "a2":  # scheduled now at its own time: after the earlier ones
            agenda.at(t, entry, "a2-now")
            agenda.at(t + 0.1, entry, "a2-later")

    for name, delay in (("s1", 1.0), ("s2", 2.5), ("s3", 3.0), ("s9", 9.0)):
        sim(name, delay)
    for name, t in (("a1", 0.5), ("tie", 2.5), ("a2", 2.7), ("a3", 2.7), ("a4", 40.2),
                    ("a5", 4.99)):
        agenda.at(t, entry, name)
    agenda.run(until=5.0)
    assert env.now == 5.0
    assert seen == [("a1", 0.5), ("s1", 1.0), ("s2", 2.5), ("tie", 2.5), ("a2", 2.7),
                    ("a3", 2.7), ("a2-now", 2.7), ("a2-later", 2.8000000000000003),
                    ("s3", 3.0), ("a5", 4.99)]
    agenda.run()  # the rest, after `until`
    assert seen[-2:] == [("s9", 9.0), ("a4", 40.2)]
    assert agenda.now == 40.2 and agenda.scheduled == 8


def test_agenda_entry_scheduled_into_a_day_already_reached_runs_in_order() -> None:
    """A SimPy event earlier than the agenda's current day schedules into that day."""
    env = simpy.Environment()
    agenda = Agenda(env)
    seen: list[float] = []
    agenda.at(7.5, lambda t: seen.append(t))
    env.timeout(3.0).callbacks.append(lambda _e: agenda.at(6.25, lambda t: seen.append(t)))
    env.timeout(3.5).callbacks.append(lambda _e: agenda.at(7.25, lambda t: seen.append(t)))
    agenda.run()
    assert seen == [6.25, 7.25, 7.5]


@pytest.mark.parametrize("seed", range(5))
def test_timeout_at_is_due_at_the_time_given(seed: int) -> None:
    """Exactly at ``t`` whenever some delay reaches it from ``env.now`` (always when
    ``now >= t / 2``, and at whole days), else one ulp of ``t`` away."""
    rng = np.random.default_rng(seed)
    n_exact = 0
    for now, t in zip(rng.uniform(0, 3000, 200), rng.uniform(0, 5000, 200), strict=True):
        t = float(max(t, now))
        for target in (t, float(math.floor(t))):
            if target < now:
                continue
            env = simpy.Environment()
            env.run(until=float(now))
            env.run(until=timeout_at(env, target))
            if now >= target / 2 or target == math.floor(target):
                assert env.now == target
            assert abs(env.now - target) <= math.ulp(target)
            n_exact += env.now == target
    assert n_exact >= 300


def _model(data: dict[str, Any], **changes: Any) -> Model:
    sc = simkit.from_dict(copy.deepcopy(data))
    return Model(sc.with_changes(changes) if changes else sc, seed=3, years=1)


@pytest.mark.parametrize("lines", [1, 3])
def test_limit_totals_are_the_dense_sums_bit_for_bit(lines: int) -> None:
    """Liability, weighted liability and credit-line use summed over the applications'
    non-zero terms equal numpy's axis-0 sums of the (n, columns) matrices exactly
    (a running sum; a single line column pairwise)."""
    data = copy.deepcopy(LINED)
    data["credit_lines"] = [{"from": "provincial", "to": "guarantor", "amount": 4e8 * (k + 1)}
                            for k in range(lines)]
    model = _model(data)
    lim, apps, seg = model.limits, model.apps, model.apps.seg
    rng = np.random.default_rng(1)
    for n in (1, 7, 300, len(apps.seg)):
        pick = np.sort(rng.choice(len(apps.seg), size=n, replace=False))
        g = apps.guaranteed[pick]
        liab = model.segments.coef[seg[pick]] * g[:, None]
        total, weighted = lim.totals(pick)
        assert np.array_equal(total, liab.sum(axis=0))
        assert np.array_equal(weighted, (liab * apps.weight[pick][:, None]).sum(axis=0))
        use, _ = lim.totals(pick, lines=True)
        assert np.array_equal(use, (model.segments.line_applies[seg[pick]]
                                    * g[:, None]).sum(axis=0))
        cols, vals = lim.sparse_need(pick)
        dense = np.zeros((n, lim.n_limits + 1))
        np.put_along_axis(dense, cols, vals, axis=1)
        assert np.array_equal(dense[:, :-1], lim.need(pick))


def _all_columns(self: Limits, apps: np.ndarray, room0: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    need = self.need(apps)
    return np.arange(self.n_limits), need, need.sum(axis=0)


@pytest.mark.parametrize("changes", [
    {"des.refusal": "queue"},
    {"des.refusal": "queue_credit_line", "parties.guarantor.net_assets": 6e7},
    {"parties.guarantor.net_assets": 4e7, "des.renewal_prob": 0.5},
])
def test_checks_on_the_binding_columns_decide_as_on_all(
        changes: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaving out the limit columns that cannot refuse anyone changes no decision
    (a binding credit line, leverage, queues, renewals)."""
    data = copy.deepcopy(LINED)
    data["credit_lines"].append({"from": "provincial", "to": "guarantor", "amount": 9e8})
    sc = simkit.from_dict(data).with_changes(changes)
    fast = checked(simulate(sc, seed=4))
    assert sum(fast.summary["refusals"][r] for r in ("leverage", "credit_line")) > 0
    monkeypatch.setattr(Limits, "binding", _all_columns)
    full = checked(simulate(sc, seed=4))
    assert identical(fast, full)


def test_single_client_check_on_liable_parties_matches_all_parties() -> None:
    """The single-client refusals (parties and counts) of a tight limit are those of the
    check over every limited party."""
    data = copy.deepcopy(BASE)
    data["parties"]["guarantor"]["single_client_limit"] = 0.0002
    model = _model(data)
    lim = model.limits
    pick = np.arange(len(model.apps.seg))
    seg, g = model.apps.seg[pick], model.apps.guaranteed[pick]
    over, parties = lim._single_over(seg, g)
    inst = model.institutions
    ref_lim = np.array([inst[j].single_limit() for j in lim.single_limited])
    ref = model.segments.coef[seg][:, lim.single_limited] * g[:, None] > ref_lim
    assert np.array_equal(over.any(axis=1), ref.any(axis=1)) and ref.any()
    bad = ref.any(axis=1)
    assert np.array_equal(parties[bad, over.argmax(axis=1)[bad]],
                          np.array(lim.single_limited)[ref.argmax(axis=1)[bad]])
