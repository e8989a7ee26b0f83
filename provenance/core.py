"""The entry types the provenance package defines, as one catalog."""

from __future__ import annotations

from provenance import codes, parties
from provenance.catalog import EntryCatalog


def core_catalog() -> EntryCatalog:
    """Parties and keys, products, batches and custody.

    Projection tables are listed dependents first, so a rebuild can empty them in order.
    """
    return EntryCatalog.of(
        [*parties.ENTRY_TYPES, *codes.ENTRY_TYPES],
        [*codes.PROJECTION_TABLES, *parties.PROJECTION_TABLES],
    )
