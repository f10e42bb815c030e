"""Units and codes shared by every part of the discrete-event model (the bottom layer).

Time is in days from the start of a run (:data:`DAYS_PER_YEAR`, :data:`DAYS_PER_MONTH`);
refusal reasons and event-log event names are coded by their position in
:data:`REASONS` and :data:`EVENTS`. Nothing here holds state.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from simkit.des.ledger import KIND_CODE

__all__ = ["DAYS_PER_MONTH", "DAYS_PER_YEAR", "EVENTS", "EVENT_CODE", "K_COMP", "K_DEFAULT",
           "K_INJ", "K_OVER", "K_REC", "K_REIMB", "REASONS", "REASON_CODE", "Process"]

DAYS_PER_YEAR = 365.0
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0
#: Refusal reasons, in the order they are checked.
REASONS = ("bank_margin", "guarantor_review", "single_client", "leverage", "credit_line",
           "withdrawn")
#: Event-log event names.
EVENTS = ("application", "refusal", "queued", "origination", "maturity", "renewal", "default",
          "claim", "renewal_refusal", "direct")
#: Event name -> code in the event log.
EVENT_CODE = {e: i for i, e in enumerate(EVENTS)}
#: Refusal reason -> code.
REASON_CODE = {r: i for i, r in enumerate(REASONS)}
K_DEFAULT = KIND_CODE["default"]
K_COMP = KIND_CODE["compensation"]
K_REIMB = KIND_CODE["reimbursement"]
K_OVER = KIND_CODE["overflow"]
K_REC = KIND_CODE["recovery"]
K_INJ = KIND_CODE["injection"]
#: Type of the generator functions run as SimPy processes.
Process = Generator[simpy.Event, Any, None]
