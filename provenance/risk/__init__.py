"""Real-time risk at the moment of sale.

Verify-before-sale takes an optional :class:`SaleContext` (buyer pseudonym, payment
instrument fingerprint with BIN and last four, device, IP, declared region, amount,
channel). The engine turns the device and IP into keyed pseudonyms, reads sliding-window
features from a state store (:mod:`.store`, :mod:`.redis_store`), runs the officers'
rules over them (:mod:`.rules`, :mod:`.language`) and answers with a
:class:`RiskAssessment`: ``allow``, ``review`` or ``block`` with reasons in English and
Chinese. Nothing in clear reaches the state, the ledger or the logs.

How verify-before-sale calls it (``webapp/api_codes.py``, ``assess_sales``). A process
keeps one :class:`~provenance.risk.live.LiveRisk`: it caches the rules in force and the
region table, and gives the engine for a session (the shared ``RedisStore`` when
``CARDTRACE_REDIS_URL`` is set, else ``SqlStore(session)``)::

    live = LiveRisk(key=fingerprint_key, redis_store=store_or_none)

    # 1. In verify, after the code's own verdict, for a sale about to happen:
    context = SaleContext.parse(raw_context)          # CardNumberRefusedError, ...
    engine = live.engine(session)
    hold = None if code_verdict is block else code_fp.hex()   # a refused code: read only
    risk = engine.assess(context, merchant=merchant, now=now, hold=hold)
    # the verdict is the more severe of the code's and risk.decision; the reasons are
    # the code's followed by risk.reasons; risk.shadow is reported and recorded.
    # hits_of(risk, facts) go to the alert queue (record_risk_hits), after the answer.

    # 2. When entries are appended (POST /entries, the sales CSV import), in the append's
    #    transaction: code.sale entries are recorded under the same reference (the code
    #    fingerprint's hex) with the pseudonyms of their bodies; payment.stolen and
    #    risk.taint notices taint the instrument or device.
    live.entries_appended(session, [signed.statement for signed in batch])

The ``code.sale`` body carries the pseudonyms ``context.keys(fingerprint_key)`` gives,
so recording from the ledger and a rebuild from it (:func:`rebuild_state`) find the same
keys. Rules are re-read by ``LiveRisk`` when an approval changes them.
"""

from __future__ import annotations

from provenance.risk.context import InstrumentRef, SaleContext, SaleFacts, SaleKeys
from provenance.risk.engine import RiskAssessment, RiskDecision, RiskEngine, RiskReason
from provenance.risk.regions import CidrRegionTable, load_region_table, parse_csv
from provenance.risk.replay import backtest, ledger_sales, rebuild_state
from provenance.risk.rules import (
    DEFAULT_RULES,
    RuleSet,
    approve_rule,
    load_rules,
    propose_rule,
    risk_catalog,
)
from provenance.risk.store import MemoryStore, SqlStore, StateStore, TaintKind

__all__ = [
    "DEFAULT_RULES",
    "CidrRegionTable",
    "InstrumentRef",
    "MemoryStore",
    "RiskAssessment",
    "RiskDecision",
    "RiskEngine",
    "RiskReason",
    "RuleSet",
    "SaleContext",
    "SaleFacts",
    "SaleKeys",
    "SqlStore",
    "StateStore",
    "TaintKind",
    "approve_rule",
    "backtest",
    "ledger_sales",
    "load_region_table",
    "load_rules",
    "parse_csv",
    "propose_rule",
    "rebuild_state",
    "risk_catalog",
]
