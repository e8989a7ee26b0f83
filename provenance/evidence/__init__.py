"""Evidence packages for law enforcement: a signed BagIt bag per case export, verified
offline with public keys only (see docs/EVIDENCE.md)."""

from provenance.evidence.errors import EvidenceError, PackageVerificationError
from provenance.evidence.fonts import find_cjk_font
from provenance.evidence.package import LANGUAGES, Package, build_package, record_export
from provenance.evidence.verify import PackageReport, verify_package

__all__ = [
    "LANGUAGES",
    "EvidenceError",
    "Package",
    "PackageReport",
    "PackageVerificationError",
    "build_package",
    "find_cjk_font",
    "record_export",
    "verify_package",
]
