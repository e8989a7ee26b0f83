"""The entry types the provenance package defines, as one catalog."""

from __future__ import annotations

from provenance import parties
from provenance.catalog import EntryCatalog


def core_catalog() -> EntryCatalog:
    """Parties and keys (later: codes, custody, alerts, cases)."""
    return EntryCatalog.of(parties.ENTRY_TYPES, parties.PROJECTION_TABLES)
