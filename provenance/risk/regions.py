"""IP address to region, from a table of CIDR ranges the platform imports.

The CSV has a header line ``network,region``, then one range a line: an IPv4 or IPv6
network in CIDR notation with its host bits zero (``203.0.113.0/24``,
``2001:db8::/32``) and an ISO 3166 region (``CN`` or ``CN-GD``). Blank lines and lines
starting with ``#`` are skipped. Ranges must not overlap. An import applies whole or not
at all, and names the line of the first problem.

Look-up turns the address into an integer and bisects the sorted range starts (one list
per address family), so a table of millions of ranges answers in O(log n) without a
database round trip.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from sqlalchemy import String, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.db import Base
from provenance.risk.errors import RegionTableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
REGION_RE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
HEADER = ("network", "region")
MAX_ROWS = 5_000_000


class RegionLookup(Protocol):
    """Where an IP address is, as far as the platform knows."""

    def region_of(self, address: IPAddress) -> str | None: ...


class RiskIpRange(Base):
    """The imported table, one row a range (the networks as written, normalised)."""

    __tablename__ = "risk_ip_range"

    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    region: Mapped[str] = mapped_column(String(8))


@dataclass(frozen=True, slots=True)
class _Family:
    starts: list[int]
    ends: list[int]
    regions: list[str]

    def find(self, number: int) -> str | None:
        index = bisect_right(self.starts, number) - 1
        if index >= 0 and number <= self.ends[index]:
            return self.regions[index]
        return None


class CidrRegionTable:
    """An in-memory table of non-overlapping CIDR ranges; see the module docstring."""

    def __init__(self, ranges: Iterable[tuple[Network, str]]) -> None:
        by_family: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for network, region in ranges:
            by_family[network.version].append(
                (int(network.network_address), int(network.broadcast_address), region)
            )
        self._families: dict[int, _Family] = {}
        self.size = 0
        for version, rows in by_family.items():
            rows.sort()
            for previous, current in pairwise(rows):
                if current[0] <= previous[1]:
                    shown = (
                        ipaddress.IPv4Address(current[0])
                        if version == 4
                        else ipaddress.IPv6Address(current[0])
                    )
                    raise RegionTableError(f"ranges overlap at {shown}")
            self._families[version] = _Family(
                [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
            )
            self.size += len(rows)

    def region_of(self, address: IPAddress) -> str | None:
        return self._families[address.version].find(int(address))


def parse_row(network: str, region: str, line: int) -> tuple[Network, str]:
    """One range, checked.

    Raises:
        RegionTableError: naming the line.
    """
    try:
        parsed = ipaddress.ip_network(network.strip(), strict=True)
    except ValueError as e:
        raise RegionTableError(
            "network must be an IPv4 or IPv6 CIDR range with its host bits zero", line=line
        ) from e
    region = region.strip()
    if not REGION_RE.fullmatch(region):
        raise RegionTableError("region must be an ISO 3166 code such as 'CN' or 'CN-GD'", line=line)
    return parsed, region


def read_ranges(lines: Iterable[str]) -> list[tuple[Network, str]]:
    """The ranges of a CSV in the format described in the module docstring.

    Raises:
        RegionTableError: a bad header or line, named.
    """
    reader = csv.reader(lines)
    ranges: list[tuple[Network, str]] = []
    header_seen = False
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if not header_seen:
            if tuple(cell.strip().lower() for cell in row) != HEADER:
                raise RegionTableError(
                    "the first line must be the header 'network,region'", line=line
                )
            header_seen = True
            continue
        if len(row) != 2:
            raise RegionTableError("expected two columns: network,region", line=line)
        if len(ranges) >= MAX_ROWS:
            raise RegionTableError(f"more than {MAX_ROWS} ranges", line=line)
        ranges.append(parse_row(row[0], row[1], line))
    if not header_seen:
        raise RegionTableError("the table is empty: expected the header 'network,region'")
    return ranges


def parse_csv(lines: Iterable[str]) -> CidrRegionTable:
    """An in-memory table from a CSV (the offline adapter).

    Raises:
        RegionTableError: a bad header, line or overlap.
    """
    return CidrRegionTable(read_ranges(lines))


def import_region_table(session: Session, lines: Iterable[str]) -> int:
    """Replace the stored table with the CSV's ranges (all or nothing).

    Returns:
        The number of ranges stored.

    Raises:
        RegionTableError: the CSV is malformed or its ranges overlap; the stored table is
            unchanged.
    """
    ranges = read_ranges(lines)
    CidrRegionTable(ranges)  # refuses overlaps before anything is replaced
    session.execute(delete(RiskIpRange))
    if ranges:
        session.execute(insert(RiskIpRange), [{"network": str(n), "region": r} for n, r in ranges])
    session.flush()
    return len(ranges)


def load_region_table(session: Session) -> CidrRegionTable:
    """The stored table, ready for look-ups."""
    rows = session.execute(select(RiskIpRange.network, RiskIpRange.region))
    return CidrRegionTable((ipaddress.ip_network(n), r) for n, r in rows)
