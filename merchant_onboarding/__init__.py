"""Merchant vetting workflow: applications, checks, screening, four-eyes decisions.

Plain Python over a SQLAlchemy ``Session``; records its decisions on the ledger.
"""
