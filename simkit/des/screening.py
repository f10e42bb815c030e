"""Noisy bank screening with effort: the bank decides on a signal of each firm's PD.

The rule (``des.screening_noise`` = ``sigma0``, ``des.screening_effort`` = ``e``; off when
``sigma0 = 0``, the default: the bank then sees the true default probability):

* the bank observes ``log PD_hat = log PD + sigma(retained) x z`` with ``z`` standard
  normal, one per application, drawn from the keyed stream ``("des.screen",
  replication, segment)`` in the segment's arrival order (the same firm has the same
  ``z`` in every variant of a scenario that draws the same applications);
* its screening effort, and so the signal's precision, falls as its retained share falls:
  ``sigma(retained) = sigma0 x (1 + e x (1 - retained))`` (a linear form: an
  **assumption**, the literature gives no functional form);
* it knows the pool, not the firm: its prior on log PD is normal with the mean and
  variance of log PD among the segment's applicants of the run (an **assumption**), and
  it decides on the posterior mean ``PD_hat = E[PD | signal]`` (:func:`observed_pd`): it
  lends when ``retained x PD_hat x LGD_mean + bank_cost <= interest_margin``; the rule
  without a guarantee (``des.direct_lending``, additionality) uses ``sigma(1) =
  sigma0``.

So a lower retained share lends more, for two reasons: the cut-off on ``PD_hat`` rises
as ``1 / retained``, and a noisier signal pulls every estimate towards the pool's mean,
so when the pool's mean passes the cut-off the bank lends to firms it would refuse if it
screened (and when it does not, it refuses firms it would serve). The approved firms'
mean true PD moves towards the applicants' mean. A segment with one fixed PD is not
affected (the prior is exact). The loan's
**true** PD is unchanged by screening: this is adverse selection through the bank's
information, apart from the moral-hazard rule :func:`simkit.factors.moral_hazard_pd`
(the true PD of a loan rises as the retained share falls), which may be on at the same
time.
"""

from __future__ import annotations

import numpy as np

from simkit._rng import stream

__all__ = ["observed_pd", "screening_sd", "signal_normals"]


def screening_sd(retained: np.ndarray | float, noise: float,
                 effort: float) -> np.ndarray:
    """Sd of the noise on log PD in the bank's signal.

    Parameters
    ----------
    retained : ndarray or float, shape (n,)
        The lender's retained share of the loan's loss (0..1).
    noise : float
        ``des.screening_noise``: the sd at full retention.
    effort : float
        ``des.screening_effort``: relative rise of the sd per unit of share passed on.

    Returns
    -------
    ndarray, shape (n,)
        ``noise x (1 + effort x (1 - retained))``.
    """
    return noise * (1.0 + effort * (1.0 - np.asarray(retained, dtype=float)))


def observed_pd(pd: np.ndarray, seg: np.ndarray, retained: np.ndarray | float,
                z: np.ndarray, noise: float, effort: float) -> np.ndarray:
    """The bank's estimate of each applicant's default probability, shape (n,).

    Parameters
    ----------
    pd : ndarray, shape (n,)
        True annual default probabilities.
    seg : ndarray of int, shape (n,)
        Segment of each application: the prior is the segment's.
    retained : ndarray or float, shape (n,)
        The lender's retained share (sets the signal's sd, :func:`screening_sd`).
    z : ndarray, shape (n,)
        Standard normals of the signals (:func:`signal_normals`).
    noise, effort : float
        ``des.screening_noise`` and ``des.screening_effort``.

    Returns
    -------
    ndarray, shape (n,)
        ``exp(m + v / 2)`` clipped to ``[1e-12, 1 - 1e-12]``: the posterior mean of the
        PD given the signal ``s = log pd + sd x z`` under a normal prior on log PD with
        the segment's applicants' mean ``mu`` and variance ``tau2``: ``w = tau2 / (tau2
        + sd^2)``, ``m = mu + w (s - mu)``, ``v = w sd^2``.
    """
    x = np.log(pd)
    n_seg = int(seg.max()) + 1 if seg.size else 0
    cnt = np.maximum(np.bincount(seg, minlength=n_seg), 1)
    mu = np.bincount(seg, weights=x, minlength=n_seg) / cnt
    tau2 = np.maximum(np.bincount(seg, weights=x * x, minlength=n_seg) / cnt - mu**2, 0.0)
    mu, tau2 = mu[seg], tau2[seg]
    sd2 = screening_sd(retained, noise, effort) ** 2
    w = np.where(tau2 + sd2 > 0, tau2 / np.where(tau2 + sd2 > 0, tau2 + sd2, 1.0), 1.0)
    signal = x + np.sqrt(sd2) * z
    m = mu + w * (signal - mu)
    return np.clip(np.exp(m + 0.5 * w * sd2), 1e-12, 1.0 - 1e-12)


def signal_normals(seed: int, replication: int, counts: list[int],
                   order: np.ndarray) -> np.ndarray:
    """The standard normals of the signals, one per application, shape (n_apps,).

    ``counts[s]`` applications of segment ``s`` draw from the stream ``("des.screen",
    replication, s)`` in their arrival order; ``order`` is the model's permutation from
    the per-segment concatenation to day order.
    """
    parts = [stream(seed, "des.screen", replication, s).standard_normal(n)
             for s, n in enumerate(counts)]
    z = np.concatenate(parts) if parts else np.zeros(0)
    return z[order]
