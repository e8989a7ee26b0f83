"""Real-time risk at the moment of sale.

Verify-before-sale takes an optional :class:`SaleContext` (buyer pseudonym, payment
instrument fingerprint with BIN and last four, device, IP, declared region, amount,
channel). The engine turns the device and IP into keyed pseudonyms, reads sliding-window
features from a state store (:mod:`.store`, :mod:`.redis_store`), runs the officers'
rules over them (:mod:`.rules`, :mod:`.language`) and answers with a
:class:`RiskAssessment`: ``allow``, ``review`` or ``block`` with reasons in English and
Chinese. Nothing in clear reaches the state, the ledger or the logs.

How verify-before-sale calls it (one engine per app; ``store`` is a ``RedisStore`` when
Redis is configured, else ``SqlStore(session)`` through ``engine.with_store``)::

    engine = RiskEngine(rules=load_rules(session), store=store, key=fingerprint_key,
                        regions=load_region_table(session))

    # 1. In verify, after the code's own verdict, for a sale about to happen:
    context = SaleContext.parse(raw_context)          # CardNumberRefusedError, ...
    risk = engine.assess(context, merchant=merchant, now=now, hold=code_fp.hex())
    # the verdict is the more severe of the code's and risk.decision; the reasons are
    # the code's followed by [r.to_json() for r in risk.reasons]; risk.shadow is recorded.
    # If the code's verdict is block while risk held the sale: engine.release(context,
    # merchant=merchant, now=now, ref=code_fp.hex()).

    # 2. After the code.sale entry commits, with the same context and the same ref:
    engine.record_sale(context, merchant=merchant, now=now, ref=code_fp.hex())

    # 3. After a partner notice (payment.stolen of an instrument, or risk.taint):
    engine.mark_tainted(TaintKind.INSTRUMENT, instrument_pseudonym)

The ``code.sale`` body gets its pseudonyms from ``context.keys(fingerprint_key)`` so that
a rebuild from the ledger (:func:`rebuild_state`) finds the same keys. Rules are reloaded
with ``load_rules(session)`` after an approval.
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
