"""Every mapped table, imported in one place for migrations and model checks."""

from __future__ import annotations

import provenance.instance
import provenance.ledger
import provenance.parties  # noqa: F401
from provenance.db import Base

metadata = Base.metadata
