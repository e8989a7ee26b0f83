"""Exchange with anti-fraud partners: sharing policies, outbound STIX 2.1 bundles, and
partners' inbound notices (STIX 2.1 or CSV) that become ledger entries and taint sources.

Modules: :mod:`~provenance.partners.policy` (who receives what),
:mod:`~provenance.partners.entries` (the ``partner.*`` ledger entries),
:mod:`~provenance.partners.stix_out` (bundles from an alert or a case),
:mod:`~provenance.partners.notices` (reading, authenticating and importing notices).
"""
