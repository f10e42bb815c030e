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
* it takes the signal at face value (no Bayesian correction): it lends when
  ``retained x PD_hat x LGD_mean + bank_cost <= interest_margin``; the rule without a
  guarantee (``des.direct_lending``, additionality) uses ``sigma(1) = sigma0``.

So a lower retained share lends more (the cut-off on ``PD_hat`` rises as ``1 /
retained``) and, through the noisier signal, lets more firms above the cut-off in (the
mean true PD of the approved firms moves towards the applicants' mean). The loan's
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


def observed_pd(pd: np.ndarray, retained: np.ndarray | float, z: np.ndarray,
                noise: float, effort: float) -> np.ndarray:
    """The bank's signal of the default probability, shape (n,).

    ``exp(log pd + screening_sd(retained) x z)``, clipped to ``[1e-12, 1 - 1e-12]``.
    """
    sd = screening_sd(retained, noise, effort)
    return np.clip(pd * np.exp(sd * z), 1e-12, 1.0 - 1e-12)


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
