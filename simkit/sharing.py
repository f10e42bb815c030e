"""The risk-share waterfall, vectorised over scenarios (paths).

Loans are grouped into *cells*: loans of one agreement that share the original guarantor,
region and segment. For each path the engines hand the waterfall four amounts per cell
(yuan): the covered default amount ``C`` (guaranteed part of defaulted principal), what
will be recovered on it ``RC``, the uncovered part above the single-guarantee limit ``U``
and its recovery ``RU``. The waterfall then

1. splits ``C`` over the agreement's layers by share (the guarantor-kind layer is taken
   by the cell's own original guarantor when the segment names one);
2. applies each capped layer's portfolio cap per pool (agreement, guarantor, region or
   segment): the layer pays ``min(share x C_pool, rate x share x base_pool)``, scaled back
   equally on every cell of the pool, and the refused rest goes to the cap's overflow
   party (uncapped);
3. returns recoveries pro rata to what each party actually paid on the cell;
4. moves, where an agreement has a ``fiscal_compensation`` rule (the 2024 tech plan's
   central budget), the fraction :func:`compensation_fraction` of what the compensated
   layer actually paid after its cap, and the same fraction of its recoveries, to the
   budget party (:meth:`Waterfall._compensate`);
5. leaves ``U - RU`` with the agreement's lender.

So for every path ``sum over parties of net loss == sum over cells of (C - RC + U - RU)``
to floating-point accuracy. Fees are deterministic flows computed by :func:`fee_flows`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from simkit.book import Cells  # Cells live with the book; re-exported here
from simkit.scenario import BORROWER, Agreement, Scenario

__all__ = ["Allocation", "CapPlan", "CellPlan", "Cells", "FeeFlows", "FeePlan", "LayerPlan",
           "Waterfall", "cap_budget", "cap_label", "cap_name", "cap_of_label",
           "cap_paid_fraction", "compensation_fraction", "compile_cells", "compile_plan",
           "fee_amount", "fee_flows", "resolve_party", "split_recovery"]


@dataclass(frozen=True)
class Allocation:
    """Result of the waterfall for a batch of paths.

    Attributes
    ----------
    paid : ndarray, shape (n_paths, n_parties)
        Gross compensation paid by each party (yuan), lender's uncovered part included.
    recovered : ndarray, shape (n_paths, n_parties)
        Recoveries returned to each party (yuan).
    overflow : ndarray, shape (n_paths, n_caps)
        Amount each cap refused (yuan), in the order of :attr:`Waterfall.caps`.
    by_cell : ndarray or None, shape (n_paths, n_cells, n_parties)
        Net loss per cell and party when requested.
    """

    paid: np.ndarray
    recovered: np.ndarray
    overflow: np.ndarray
    by_cell: np.ndarray | None = None

    @property
    def net(self) -> np.ndarray:
        """Net loss per party after recoveries, shape (n_paths, n_parties), yuan."""
        return self.paid - self.recovered

    @property
    def cap_binding(self) -> np.ndarray:
        """Whether each cap refused anything, shape (n_paths, n_caps), bool."""
        return self.overflow > 0


@dataclass(frozen=True)
class FeeFlows:
    """Annual fee flows of a book.

    Attributes
    ----------
    amounts : ndarray, shape (n_flows,)
        Yuan per year for each ``(payer, payee)`` pair.
    payer, payee : tuple of str
        Party names (the payer may be ``"borrower"``).
    kind : tuple of str
    """

    amounts: np.ndarray
    payer: tuple[str, ...]
    payee: tuple[str, ...]
    kind: tuple[str, ...]

    def net_income(self, parties: tuple[str, ...]) -> np.ndarray:
        """Fees received minus fees paid per party, shape (n_parties,), yuan per year."""
        out = np.zeros(len(parties))
        index = {p: i for i, p in enumerate(parties)}
        for amount, frm, to in zip(self.amounts, self.payer, self.payee, strict=True):
            out[index[to]] += amount
            if frm != BORROWER:
                out[index[frm]] -= amount
        return out

    def borrower_paid(self) -> float:
        """Total fees paid by borrowers (yuan per year)."""
        return float(sum(a for a, frm in zip(self.amounts, self.payer, strict=True)
                         if frm == BORROWER))


@dataclass(frozen=True)
class CapSpec:
    """One capped (layer, pool): which cells it covers and its annual limit in yuan."""

    agreement: str
    party: str
    overflow: str
    pool: str
    cells: np.ndarray
    limit: float

    @property
    def name(self) -> str:
        """:func:`cap_name`, the name in every report."""
        return cap_name(self.agreement, self.party)


@dataclass(eq=False)
class Waterfall:
    """The compiled waterfall for one scenario and one set of cells.

    Build it once per book (:meth:`from_scenario`) and call :meth:`apply` per block of
    paths; the arrays it holds are small (cells x layers x parties).
    """

    parties: tuple[str, ...]
    cells: Cells
    shares: np.ndarray  # (n_cells, n_parties): uncapped share of C per party
    lender: np.ndarray  # (n_cells,) lender column
    capped_share: np.ndarray  # (n_caps, n_cells): share of the capped layer
    capped_party: np.ndarray  # (n_caps,) column of the capped party
    overflow_party: np.ndarray  # (n_caps, n_cells) column of the overflow party per cell
    pool_of_cell: np.ndarray  # (n_caps, n_cells) pool index or -1
    pool_limit: list[np.ndarray]  # per cap: (n_pools,) yuan
    caps: list[CapSpec] = field(default_factory=list)
    #: fiscal compensation per cell: fraction of the compensated layer's payment the
    #: budget bears (0 = no rule), the budget's and the compensated party's columns
    comp_frac: np.ndarray = field(default_factory=lambda: np.zeros(0))
    comp_from: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    comp_to: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))

    @classmethod
    def from_scenario(cls, scenario: Scenario, cells: Cells,
                      base_scale: float = 1.0) -> Waterfall:
        """Compile the scenario's agreements for ``cells`` (from :func:`compile_cells`).

        Parameters
        ----------
        base_scale : float
            Multiplies every cap base (e.g. the number of cohorts in a statistics period).
        """
        parties = scenario.party_names
        col = {p: i for i, p in enumerate(parties)}
        plans = compile_cells(scenario, cells)
        n_cells, n_parties = len(cells), len(parties)
        shares = np.zeros((n_cells, n_parties))
        lender = np.zeros(n_cells, dtype=np.intp)
        cap_rows: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray, CapSpec]] = []
        comp_frac = np.zeros(n_cells)
        comp_from = np.zeros(n_cells, dtype=np.intp)
        comp_to = np.zeros(n_cells, dtype=np.intp)
        for a_idx, agreement in enumerate(scenario.agreements):
            mine = np.flatnonzero(cells.agreement == a_idx)
            if mine.size == 0:
                continue
            lender[mine] = col[agreement.lender]
            rule = agreement.fiscal_compensation
            if rule is not None:
                comp_frac[mine] = compensation_fraction(agreement, rule.to_party)
                comp_from[mine], comp_to[mine] = col[rule.from_party], col[rule.to_party]
            for j, layer in enumerate(agreement.layers):
                rules = [plans[c].layers[j] for c in mine]
                party_of = [r.party for r in rules]
                if layer.cap is None:
                    for c, p in zip(mine, party_of, strict=True):
                        shares[c, col[p]] += layer.share
                    continue
                keys = [r.cap.pool_key for r in rules]  # type: ignore[union-attr]
                uniq = sorted(set(keys))
                pool_idx = np.full(n_cells, -1, dtype=np.intp)
                pool_idx[mine] = [uniq.index(k) for k in keys]
                base = cells.guaranteed if layer.cap.base == "guaranteed" else cells.annualised
                # a capped guarantor-kind layer maps to each cell's own guarantor: every
                # guarantor gets its own cap on its own cells (its pools, its base)
                for p in sorted(set(party_of)):
                    sel = mine[[q == p for q in party_of]]
                    limits = np.zeros(len(uniq))
                    np.add.at(limits, pool_idx[sel],
                              cap_budget(layer.cap.rate, layer.share, base[sel]) * base_scale)
                    row = np.zeros(n_cells)
                    row[sel] = layer.share
                    pidx = np.full(n_cells, -1, dtype=np.intp)
                    pidx[sel] = pool_idx[sel]
                    spec = CapSpec(agreement.name, p, layer.cap.overflow, layer.cap.pool, sel,
                                   float(limits.sum()))
                    over = np.full(n_cells, col[layer.cap.overflow], dtype=np.intp)
                    for c in sel:
                        over[c] = col[plans[c].layers[j].cap.overflow]
                    cap_rows.append((row, col[p], over, pidx, limits, spec))
        n_caps = len(cap_rows)
        return cls(
            parties=parties,
            cells=cells,
            shares=shares,
            lender=lender,
            capped_share=np.array([r[0] for r in cap_rows]).reshape(n_caps, n_cells),
            capped_party=np.array([r[1] for r in cap_rows], dtype=np.intp),
            overflow_party=np.array([r[2] for r in cap_rows], dtype=np.intp).reshape(
                n_caps, n_cells),
            pool_of_cell=np.array([r[3] for r in cap_rows], dtype=np.intp).reshape(
                n_caps, n_cells),
            pool_limit=[r[4] for r in cap_rows],
            caps=[r[5] for r in cap_rows],
            comp_frac=comp_frac, comp_from=comp_from, comp_to=comp_to,
        )

    def apply(
        self,
        covered: np.ndarray,
        covered_recovery: np.ndarray,
        uncovered: np.ndarray | None = None,
        uncovered_recovery: np.ndarray | None = None,
        *,
        by_cell: bool = False,
    ) -> Allocation:
        """Allocate one block of paths.

        Parameters
        ----------
        covered, covered_recovery : ndarray, shape (n_paths, n_cells)
            Covered default amount and its eventual recovery per cell (yuan).
        uncovered, uncovered_recovery : ndarray, shape (n_paths, n_cells), optional
            Defaulted amount above the single-guarantee limit and its recovery (yuan).
        by_cell : bool
            Also return the net loss per cell and party (for tail attribution).

        Returns
        -------
        Allocation
        """
        covered = np.asarray(covered, dtype=np.float64)
        n_paths, n_cells = covered.shape
        if n_cells != len(self.cells):
            raise ValueError(f"`covered` has {n_cells} cells, the waterfall {len(self.cells)}")
        covered_recovery = np.asarray(covered_recovery, dtype=np.float64)
        n_parties = len(self.parties)
        # recoveries are returned pro rata to what each party paid on the cell
        with np.errstate(invalid="ignore", divide="ignore"):
            rec_frac = np.where(covered > 0, covered_recovery / covered, 0.0)
        # uncapped layers: linear in the cell amounts
        paid = covered @ self.shares
        recovered = covered_recovery @ self.shares
        cell_net = None
        if by_cell:
            cell_net = (covered - covered_recovery)[:, :, None] * self.shares[None]
        overflow = np.zeros((n_paths, len(self.caps)))
        # what each compensated layer actually paid per cell (fiscal compensation rule)
        comp = (covered * self.shares[np.arange(n_cells), self.comp_to] if self._comp_on
                else None)
        for k, (cells_k, pools_k, pool_onehot, over_onehot) in enumerate(self._compiled):
            raw = covered[:, cells_k] * self.capped_share[k, cells_k]  # (n, cells_k)
            pool_raw = raw @ pool_onehot
            pool_paid = np.minimum(pool_raw, self.pool_limit[k][None, :])
            scale = np.asarray(cap_paid_fraction(pool_raw, self.pool_limit[k][None, :]))
            cell_paid = raw * scale[:, pools_k]
            refused = raw - cell_paid
            rf = rec_frac[:, cells_k]
            col = self.capped_party[k]
            paid[:, col] += cell_paid.sum(axis=1)
            recovered[:, col] += (cell_paid * rf).sum(axis=1)
            paid += refused @ over_onehot
            recovered += (refused * rf) @ over_onehot
            overflow[:, k] = np.maximum(pool_raw - pool_paid, 0.0).sum(axis=1)
            if cell_net is not None:
                cell_net[:, cells_k, col] += cell_paid * (1 - rf)
                cell_net[:, cells_k, :] += (refused * (1 - rf))[:, :, None] * over_onehot[None]
            if comp is not None:
                comp[:, cells_k] += cell_paid * (self.comp_to[cells_k] == col)
        if comp is not None:
            self._compensate(comp, rec_frac, paid, recovered, cell_net)
        if uncovered is not None:
            unc = np.asarray(uncovered, dtype=np.float64)
            unc_rec = (np.zeros_like(unc) if uncovered_recovery is None
                       else np.asarray(uncovered_recovery, dtype=np.float64))
            lender = np.zeros((n_cells, n_parties))
            lender[np.arange(n_cells), self.lender] = 1.0
            paid += unc @ lender
            recovered += unc_rec @ lender
            if cell_net is not None:
                cell_net += (unc - unc_rec)[:, :, None] * lender[None]
        return Allocation(paid=paid, recovered=recovered, overflow=overflow, by_cell=cell_net)

    def party_cells(self) -> np.ndarray:
        """Which cells' amounts can change each party's payments, shape (n_parties,
        n_cells), bool.

        A party's payments on a cell depend on that cell's amounts when it holds an
        uncapped share of it, lends on it (the uncovered part), is a cap's capped or
        overflow party on it, or is a fiscal-compensation rule's budget or compensated
        party on it; a capped layer pays pro rata within its pool, so every party of a
        pool depends on all the pool's cells (closed over pools until nothing changes).
        Nothing else mixes cells, so a party's loss is a function of its cells' amounts
        alone (tested by perturbing the other cells).
        """
        n_cells, n_parties = len(self.cells), len(self.parties)
        dep = (self.shares > 0).T.copy()
        dep[self.lender, np.arange(n_cells)] = True
        on = self.comp_frac > 0
        dep[self.comp_from[on], np.flatnonzero(on)] = True
        dep[self.comp_to[on], np.flatnonzero(on)] = True
        pools = []  # one (n_cells,) bool row per pool of every cap
        for k in range(len(self.caps)):
            mine = np.flatnonzero((self.pool_of_cell[k] >= 0) & (self.capped_share[k] > 0))
            dep[self.capped_party[k], mine] = True
            dep[self.overflow_party[k, mine], mine] = True
            for j in np.unique(self.pool_of_cell[k, mine]):
                pools.append(self.pool_of_cell[k] == j)
        if pools:
            pool = np.array(pools)  # (n_pools, n_cells)
            while True:
                touched = (dep.astype(np.int64) @ pool.T.astype(np.int64)) > 0
                grown = dep | ((touched.astype(np.int64) @ pool.astype(np.int64)) > 0)
                if np.array_equal(grown, dep):
                    break
                dep = grown
        assert dep.shape == (n_parties, n_cells)
        return dep

    @cached_property
    def _comp_on(self) -> bool:
        return bool(np.any(self.comp_frac > 0))

    def _compensate(self, layer_paid: np.ndarray, rec_frac: np.ndarray, paid: np.ndarray,
                    recovered: np.ndarray, cell_net: np.ndarray | None) -> None:
        """Apply the fiscal compensation rules in place.

        The budget party takes ``comp_frac`` of what the compensated layer paid on each
        cell (after its cap; amounts it took as a cap's overflow party are not
        compensated) and the same fraction of that layer's recoveries, which the
        compensated party gives up: every party's paid, recovered and net change by
        opposite amounts, so the total is conserved.

        Parameters
        ----------
        layer_paid : ndarray, shape (n_paths, n_cells)
            What the compensated layer paid per cell (yuan).
        rec_frac : ndarray, shape (n_paths, n_cells)
            Recovered fraction of each cell's covered amount.
        paid, recovered : ndarray, shape (n_paths, n_parties)
            Updated in place.
        cell_net : ndarray, shape (n_paths, n_cells, n_parties) or None
            Updated in place when given.
        """
        n_cells, n_parties = len(self.cells), len(self.parties)
        move = np.zeros((n_cells, n_parties))  # +1 budget column, -1 compensated column
        on = self.comp_frac > 0
        rows = np.flatnonzero(on)
        move[rows, self.comp_from[on]] += 1.0
        move[rows, self.comp_to[on]] -= 1.0
        transfer = layer_paid * self.comp_frac[None, :]
        transfer_rec = transfer * rec_frac
        paid += transfer @ move
        recovered += transfer_rec @ move
        if cell_net is not None:
            cell_net += (transfer - transfer_rec)[:, :, None] * move[None]

    @cached_property
    def _compiled(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per cap: its cells, their pool index, pool one-hot (cells_k, n_pools) and
        overflow-party one-hot (cells_k, n_parties)."""
        out = []
        n_parties = len(self.parties)
        for k in range(len(self.caps)):
            cells_k = np.flatnonzero(self.pool_of_cell[k] >= 0)
            pools_k = self.pool_of_cell[k, cells_k]
            pool_onehot = np.zeros((len(cells_k), len(self.pool_limit[k])))
            pool_onehot[np.arange(len(cells_k)), pools_k] = 1.0
            over_onehot = np.zeros((len(cells_k), n_parties))
            over_onehot[np.arange(len(cells_k)), self.overflow_party[k, cells_k]] = 1.0
            out.append((cells_k, pools_k, pool_onehot, over_onehot))
        return out


def compensation_fraction(agreement: Agreement, party: str) -> float:
    """Fraction of what ``party``'s layer pays that the agreement's budget rule gives to
    the budget party: ``(share - standard_share) / share`` for the compensated layer when
    its share exceeds the standard, else 0 (DOMAIN.md (b), the 2024 tech plan [S12]).

    The one writer of the rule: the waterfall, the closed-form estimate and the DES
    settlement all call it. E.g. a national-fund share of 40 % against the standard 20 %
    gives 0.5: the central budget bears half of what the fund pays, the 20 points of
    the loan above the standard.
    """
    rule = agreement.fiscal_compensation
    if rule is None or party != rule.to_party:
        return 0.0
    share = agreement.share_of(rule.to_party)
    if share <= rule.standard_share:
        return 0.0
    return (share - rule.standard_share) / share


def resolve_party(name: str, kinds: dict[str, str], guarantor: str | None) -> str:
    """The party that acts for ``name`` on a loan whose original guarantor is ``guarantor``:
    a guarantor-kind party is replaced by the loan's own guarantor (when it names one)."""
    if guarantor is not None and kinds.get(name) == "guarantor":
        return guarantor
    return name


# ======================================================================================
# the rulebook: one compiled plan per group of loans, read by every engine
# ======================================================================================
def cap_name(agreement: str, party: str) -> str:
    """The name of a capped layer in every report: ``"agreement:party"`` (the party as
    resolved for the loans, so each original guarantor's capped layer has its own)."""
    return f"{agreement}:{party}"


def cap_label(name: str, pool: str, key: str) -> str:
    """The name of one pool of a cap: :func:`cap_name` alone for the ``"agreement"``
    pool (one pool), else ``"agreement:party:pool=key"``. The Monte Carlo reports a cap
    summed over its pools under :func:`cap_name`; the DES reports each pool, so a DES
    label maps to its Monte Carlo cap by :func:`cap_of_label`."""
    return name if pool == "agreement" else f"{name}:{pool}={key}"


def cap_of_label(label: str) -> str:
    """The :func:`cap_name` of a pool label from :func:`cap_label`."""
    head, _, tail = label.rpartition(":")
    return head if "=" in tail and head else label


def cap_budget(rate: float, share: float, base: float | np.ndarray) -> float | np.ndarray:
    """What a capped layer pays at most in one statistics period and pool:
    ``rate x share x base`` (yuan; ``base`` in yuan or yuan-years)."""
    return rate * share * base


def cap_paid_fraction(total_due: float | np.ndarray,
                      budget: float | np.ndarray) -> float | np.ndarray:
    """Fraction of what a capped layer owes in a pool and period that it pays: the
    pro-rata refusal ``min(1, budget / total due)``, 1 where nothing is due. Every claim
    of the pool and period gets the same fraction; the rest goes to the overflow party.
    """
    if np.ndim(total_due) == 0 and np.ndim(budget) == 0:
        return 1.0 if total_due <= budget else max(float(budget), 0.0) / float(total_due)
    with np.errstate(all="ignore"):  # the discarded branch may divide by ~0
        return np.where(total_due > budget, np.maximum(budget, 0.0) / total_due, 1.0)


def fee_amount(rate: float, rate_above: float, threshold: float, share: float,
               guaranteed: np.ndarray, years: np.ndarray | float) -> np.ndarray:
    """The one fee formula: ``r x guaranteed x share x years`` per loan (yuan), with ``r``
    = ``rate_above`` for guaranteed amounts above ``threshold``, else ``rate``.

    Parameters
    ----------
    guaranteed : ndarray, shape (n,)
        Guaranteed amount per loan (yuan).
    years : ndarray, shape (n,), or float
        Time charged per loan (years): tenor prorated, ``min(tenor, period)``.
    """
    return np.where(guaranteed > threshold, rate_above, rate) * guaranteed * share * years


def split_recovery(amount: float, net: list[float]) -> list[float]:
    """A loan's recovery returned pro rata to what each party paid net on it (parties
    with a net payment <= 0 get nothing); zeros when nothing was paid."""
    total = sum(x for x in net if x > 0)
    if amount <= 0 or total <= 0:
        return [0.0] * len(net)
    return [amount * x / total if x > 0 else 0.0 for x in net]


@dataclass(frozen=True)
class CapPlan:
    """A layer's portfolio cap as it applies to one cell.

    Attributes
    ----------
    name : str
        :func:`cap_name` (the report name of the capped layer).
    pool, pool_key : str
        Pool kind (``agreement``, ``guarantor``, ``region``, ``segment``) and the cell's
        pool value (``"all"``, the acting guarantor, the region or the segment).
    rate : float
    base : str
        ``"guaranteed"`` or ``"annualised"`` (yuan-years).
    period_years : float
        Length of a statistics period (whole years).
    overflow : str
        Party bearing what the cap refuses, resolved for the cell.
    """

    name: str
    pool: str
    pool_key: str
    rate: float
    base: str
    period_years: float
    overflow: str

    @property
    def label(self) -> str:
        """The pool's name (:func:`cap_label`)."""
        return cap_label(self.name, self.pool, self.pool_key)


@dataclass(frozen=True)
class LayerPlan:
    """One layer of an agreement resolved for a cell.

    Attributes
    ----------
    party : str
        The acting party (guarantor-kind layers: the cell's own original guarantor).
    written : str
        The party as the agreement names it.
    share : float
    lag_days : float
    cap : CapPlan or None
    compensation : float
        :func:`compensation_fraction` of what this layer pays borne by ``budget``.
    budget : str or None
        The fiscal-compensation budget party (None without a rule for this layer).
    """

    party: str
    written: str
    share: float
    lag_days: float
    cap: CapPlan | None
    compensation: float = 0.0
    budget: str | None = None


@dataclass(frozen=True)
class FeePlan:
    """One fee of an agreement resolved for a cell (payer may be ``"borrower"``)."""

    payer: str
    payee: str
    kind: str
    rate: float
    rate_above: float
    threshold: float
    share: float

    def amount(self, guaranteed: np.ndarray, years: np.ndarray | float) -> np.ndarray:
        """Yuan per loan: :func:`fee_amount`."""
        return fee_amount(self.rate, self.rate_above, self.threshold, self.share,
                          guaranteed, years)


@dataclass(frozen=True)
class CellPlan:
    """An agreement compiled for one group of loans (cell or DES segment).

    Attributes
    ----------
    agreement : str
    agreement_index : int
    lender : str
    front : str
        The party that pays the bank the covered part (the guarantor-kind layer's
        acting party; else the first other layer with a share; else the lender).
    lender_share : float
        The lender's own layer share of the guaranteed amount.
    single_limit : float
        Guaranteed amount per loan at most (yuan); the rest stays with the lender.
    recovery_lag_years : float
    layers : tuple of LayerPlan
        In the agreement's order.
    fees : tuple of FeePlan
    """

    agreement: str
    agreement_index: int
    lender: str
    front: str
    lender_share: float
    single_limit: float
    recovery_lag_years: float
    layers: tuple[LayerPlan, ...]
    fees: tuple[FeePlan, ...]

    def guaranteed(self, exposure: np.ndarray) -> np.ndarray:
        """Guaranteed amount per loan, ``min(exposure, single_limit)`` (yuan)."""
        return np.minimum(exposure, self.single_limit)


def compile_plan(scenario: Scenario, agreement_index: int, guarantor: str | None,
                 region: str, segment: str) -> CellPlan:
    """Compile agreement ``agreement_index`` for loans with original guarantor
    ``guarantor`` (None: the agreement's own), in ``region`` and ``segment``: the one
    place where parties are resolved, pools keyed, fees and compensation read."""
    agreement = scenario.agreements[agreement_index]
    kinds = {p.name: p.kind for p in scenario.parties}

    def resolve(name: str) -> str:
        return resolve_party(name, kinds, guarantor)

    resolved = [resolve(layer.party) for layer in agreement.layers]
    lender = agreement.lender
    gua = [r for r, layer in zip(resolved, agreement.layers, strict=True)
           if kinds.get(layer.party) == "guarantor"]
    others = [r for r, layer in zip(resolved, agreement.layers, strict=True)
              if r != lender and layer.share > 0]
    front = gua[0] if gua else (others[0] if others else lender)
    rule = agreement.fiscal_compensation
    layers = []
    for party, layer in zip(resolved, agreement.layers, strict=True):
        cap = None
        if layer.cap is not None:
            c = layer.cap
            key = {"agreement": "all", "guarantor": front, "region": region,
                   "segment": segment}[c.pool]
            cap = CapPlan(cap_name(agreement.name, party), c.pool, key, c.rate, c.base,
                          c.period_years, resolve(c.overflow))
        frac = compensation_fraction(agreement, layer.party)
        layers.append(LayerPlan(party, layer.party, layer.share, layer.lag_days, cap, frac,
                                rule.from_party if frac > 0 and rule is not None else None))
    fees = tuple(
        FeePlan(BORROWER if fee.from_party == BORROWER else resolve(fee.from_party),
                resolve(fee.to_party), fee.kind, fee.rate,
                fee.rate if fee.rate_above is None else fee.rate_above, fee.threshold,
                1.0 if fee.on_share_of is None else agreement.share_of(fee.on_share_of))
        for fee in agreement.fees)
    return CellPlan(
        agreement=agreement.name, agreement_index=agreement_index, lender=lender,
        front=front, lender_share=sum(layer.share for r, layer in
                                      zip(resolved, agreement.layers, strict=True)
                                      if r == lender),
        single_limit=agreement.single_limit,
        recovery_lag_years=agreement.recovery_lag_years, layers=tuple(layers), fees=fees)


def compile_cells(scenario: Scenario, cells: Cells) -> tuple[CellPlan, ...]:
    """:func:`compile_plan` for every cell (compiled once per distinct key)."""
    memo: dict[tuple[int, str | None, str, str], CellPlan] = {}
    out = []
    for c in range(len(cells)):
        key = (int(cells.agreement[c]), cells.guarantor[c], cells.region[c],
               cells.segment[c])
        plan = memo.get(key)
        if plan is None:
            plan = memo[key] = compile_plan(scenario, *key)
        out.append(plan)
    return tuple(out)


def fee_flows(
    scenario: Scenario,
    cell_of_loan: np.ndarray,
    cells: Cells,
    guaranteed: np.ndarray,
    tenor_years: np.ndarray,
    years: float = 1.0,
) -> FeeFlows:
    """Fees paid on a book over ``years`` (prorated by tenor, at most ``years``).

    Parameters
    ----------
    cell_of_loan : ndarray of int, shape (n_loans,)
    guaranteed : ndarray, shape (n_loans,)
        Guaranteed amount per loan (yuan).
    tenor_years : ndarray, shape (n_loans,)

    Returns
    -------
    FeeFlows
        One flow per (agreement fee, payee party) with the yuan amount.
    """
    plans = compile_cells(scenario, cells)
    n_cells = len(cells)
    time = np.broadcast_to(np.minimum(tenor_years, years), np.shape(cell_of_loan))
    totals: dict[tuple[str, str, str], float] = {}
    # each agreement's loans, in book order (a bin's sum adds the same terms in the same
    # order as over the whole book: the same bits, without a pass over every loan per fee)
    agreement_of_loan = np.asarray(cells.agreement)[cell_of_loan]
    by_agreement = np.argsort(agreement_of_loan, kind="stable")
    bounds = np.searchsorted(agreement_of_loan[by_agreement],
                             np.arange(len(scenario.agreements) + 1))
    for a_idx, agreement in enumerate(scenario.agreements):
        mine = np.flatnonzero(cells.agreement == a_idx)
        if mine.size == 0:
            continue
        loans = by_agreement[bounds[a_idx]:bounds[a_idx + 1]]
        for f_idx in range(len(agreement.fees)):
            # the formula is the agreement's; only payer and payee are resolved per cell
            per_cell = np.bincount(
                cell_of_loan[loans], weights=plans[mine[0]].fees[f_idx].amount(
                    guaranteed[loans], time[loans]), minlength=n_cells)
            for c in mine:
                rule = plans[c].fees[f_idx]
                key = (rule.payer, rule.payee, rule.kind)
                totals[key] = totals.get(key, 0.0) + float(per_cell[c])
    keys = sorted(totals)
    return FeeFlows(
        amounts=np.array([totals[k] for k in keys]),
        payer=tuple(k[0] for k in keys),
        payee=tuple(k[1] for k in keys),
        kind=tuple(k[2] for k in keys),
    )
