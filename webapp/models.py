"""Every mapped table, imported in one place for migrations and model checks."""

from __future__ import annotations

import provenance.instance  # noqa: F401  (each import registers its tables)
import provenance.ledger  # noqa: F401
import provenance.parties  # noqa: F401
from provenance.db import Base

metadata = Base.metadata
