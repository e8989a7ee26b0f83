"""Every mapped table, imported in one place for migrations and model checks."""

from __future__ import annotations

import provenance.instance  # noqa: F401  (registers its tables)
from provenance.db import Base

metadata = Base.metadata
