"""Which factors each party's loss depends on, and the per-party importance weights.

Under importance sampling every path carries the likelihood ratio ``w = dP/dQ`` of all
its factors (:attr:`simkit.lossresult.LossResult.weights`). A party whose loss depends on
a subset ``S`` of the factors only (a provincial re-guarantor on its own province's loans:
the national, sector, its region's and its guarantors' factors) has the same expectation
under the ratio of the marginal densities on ``S``, ``w_S = phi_S / q_S``
(:func:`simkit.factors.marginal_log_ratio`): the factors outside ``S`` integrate out.
``w_S`` varies far less than ``w`` when the sampling measure shifts factors outside
``S`` -- which lets one mixture component shift every region's factor at once
(:func:`simkit.montecarlo.auto_shifts`) and still give each region's parties nearly
plain-Monte-Carlo weights in their own tail. Each party's VaR, ES and expected loss are
then estimated with its own weights (:attr:`~simkit.lossresult.LossResult.party_weights`);
both estimators are unbiased, so the choice only changes the error bars.

The dependence is derived, not declared: a party depends on the cells whose amounts
can change its payments (:meth:`simkit.sharing.Waterfall.party_cells`, closed over cap
pools) and a cell on the factors its loans load on (:func:`cell_factor_mask`). The
national factor is always included (it also drives the downturn LGD), and so is the
Student-t mixing variable, which every loan shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simkit.factors import FactorModel

__all__ = ["cell_factor_mask", "party_factor_mask", "regions_separate", "weight_groups"]


def cell_factor_mask(band_cell: np.ndarray, band_region: np.ndarray,
                     band_sector: np.ndarray, band_gcol: np.ndarray,
                     band_loadings: np.ndarray, n_cells: int,
                     model: FactorModel) -> np.ndarray:
    """The factors each cell's loans load on, shape (n_cells, n_factors), bool.

    Parameters
    ----------
    band_cell, band_region, band_sector, band_gcol : ndarray of int, shape (n_bands,)
        Cell, region, sector and guarantor-factor column of each band of loans.
    band_loadings : ndarray, shape (n_bands, 4)
        National, regional, sector and guarantor loadings of each band.
    n_cells : int
    model : FactorModel
        Gives the factor columns (national, regions, sectors, guarantors).
    """
    out = np.zeros((n_cells, model.n_factors), dtype=bool)
    out[:, 0] = True  # the national factor (and the downturn LGD it drives)
    r0 = 1
    s0 = r0 + model.n_regions
    g0 = s0 + model.n_sectors
    cols = np.column_stack([np.zeros_like(band_region), r0 + band_region, s0 + band_sector,
                            g0 + band_gcol])
    used = np.asarray(band_loadings) != 0
    for j in range(4):
        sel = used[:, j]
        out[band_cell[sel], cols[sel, j]] = True
    return out


def party_factor_mask(party_cells: Sequence[np.ndarray], cell_factors: Sequence[np.ndarray],
                      cell_maps: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """The factors each party's loss depends on over all years, (n_parties, n_factors).

    Parameters
    ----------
    party_cells : sequence of ndarray of bool, shape (n_parties, n_cells_y)
        Per year, :meth:`simkit.sharing.Waterfall.party_cells` of the policy's waterfall.
    cell_factors : sequence of ndarray of bool, shape (n_sampled_cells_y, n_factors)
        Per year, :func:`cell_factor_mask` of the cells whose sums are sampled.
    cell_maps : sequence of (ndarray, shape (n_sampled_cells_y, n_cells_y)) or None
        Per year, the 0/1 matrix taking the sampled cells to the policy's cells (``None``:
        the same cells).
    """
    out: np.ndarray | None = None
    for y, (dep, cf) in enumerate(zip(party_cells, cell_factors, strict=True)):
        m = None if cell_maps is None else cell_maps[y]
        if m is not None:  # back to the sampled cells
            dep = (dep.astype(np.float64) @ np.asarray(m, dtype=np.float64).T) > 0
        mask = (dep.astype(np.int64) @ cf.astype(np.int64)) > 0
        out = mask if out is None else out | mask
    assert out is not None
    out[:, 0] = True
    return out


def weight_groups(masks: Sequence[np.ndarray], used: np.ndarray | None = None,
                  ) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """The distinct proper subsets among the policies' party masks.

    Parameters
    ----------
    masks : sequence of ndarray of bool, shape (n_parties_p, n_factors)
        One :func:`party_factor_mask` per policy.
    used : ndarray of bool, shape (n_factors,), optional
        The factors any loan loads on: a mask that holds all of them is the full set
        (the other factors move no loss).

    Returns
    -------
    groups : ndarray of bool, shape (G, n_factors), or None
        The distinct masks that leave out some factor (``None`` when every party depends
        on every factor: the run's weights serve them all).
    party_group : list of ndarray of int, shape (n_parties_p,)
        Per policy, each party's row of ``groups``, ``-1`` for the full weights.
    """
    rows: dict[bytes, int] = {}
    groups: list[np.ndarray] = []
    out = []
    for mask in masks:
        idx = np.full(len(mask), -1, dtype=np.intp)
        for j, row in enumerate(np.asarray(mask, dtype=bool)):
            if row.all() or (used is not None and np.all(row | ~used)):
                continue
            key = row.tobytes()
            if key not in rows:
                rows[key] = len(groups)
                groups.append(row)
            idx[j] = rows[key]
        out.append(idx)
    return (np.array(groups) if groups else None), out


def regions_separate(groups: np.ndarray | None, model: FactorModel,
                     regions: np.ndarray) -> bool:
    """Whether every region of the book has a party of its own: one whose factors hold
    that region's factor and no other region's. Then one mixture row can shift every
    region at once (each region's parties weighted by their own factors see it as their
    region's shift alone); otherwise the regions keep a row each (a party whose loss
    spans regions, e.g. through a cap pooled over them, is weighted by all the factors).

    Parameters
    ----------
    groups : ndarray of bool, shape (G, n_factors), or None
        :func:`weight_groups`.
    model : FactorModel
    regions : ndarray of int
        The region codes of the book's loans (or their distinct values).
    """
    used = np.unique(regions)
    if groups is None or used.size < 2:
        return False
    cols = 1 + used
    region_part = np.asarray(groups, dtype=bool)[:, 1:1 + model.n_regions]
    single = region_part.sum(axis=1) == 1
    own = set(np.flatnonzero(region_part[single].any(axis=0)) + 1)
    return all(int(c) in own for c in cols)
