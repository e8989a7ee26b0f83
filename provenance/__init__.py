"""cardtrace provenance core: the ledger, card codes, verification, analysis and reports.

Plain Python over a SQLAlchemy ``Session``; no web framework and no task queue here.
"""
