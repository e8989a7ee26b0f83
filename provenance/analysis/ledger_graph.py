"""The ledger as a graph: parties, buyers, instruments, devices, IPs, products, batches.

:class:`LedgerGraph` reads ledger entries one at a time (:meth:`LedgerGraph.apply`) and
keeps what the ledger detectors need, compactly: nodes as integer ids with a kind, edges
as parallel arrays (source, target, kind, amount, time, seq), one small record per code
(serial fingerprint, product, batch, origin, holder, sale) and the reported stolen
instruments and payment references. It remembers the last seq it read, so a later run
reads only the entries appended since (:func:`read_ledger`), and it round-trips through
bytes (:meth:`LedgerGraph.to_bytes` / :meth:`LedgerGraph.from_bytes`) so the next run
can start from where this one stopped. With it go the detectors' memos (what a detector
found at the graph's extent then, :meth:`LedgerGraph.remember`), so that a later run
recomputes only what the new entries can change.

Evidence is drawn as networkx ``MultiDiGraph`` subgraphs (:meth:`LedgerGraph.subgraph`),
with kind on every node and kind, amount, time and seq on every edge.

The entries read were validated and their projections applied when they were appended;
this module trusts the stored records and skips what it does not use (listing,
redemption, freezing, keys).
"""

from __future__ import annotations

import base64
import binascii
import gc
import math
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from itertools import repeat
from typing import Any

import networkx as nx
import numpy as np
import orjson
from sqlalchemy.orm import Session

from provenance.analysis.transfers import TransferTable, format_epoch
from provenance.errors import ValidationError
from provenance.ledger import iter_records

SNAPSHOT_VERSION = 4


class NodeKind(StrEnum):
    PARTY = "party"
    BUYER = "buyer"
    INSTRUMENT = "instrument"
    PAYMENT_REF = "payment_ref"
    DEVICE = "device"
    IP = "ip"
    PRODUCT = "product"
    BATCH = "batch"
    CODE = "code"


class EdgeKind(IntEnum):
    """What an edge row records; the value is what the edge arrays store. Sales are
    kept in the sale arrays instead (see :meth:`LedgerGraph.subgraph`)."""

    ISSUE = 0  # issuer -> batch (amount: codes)
    ATTEST = 1  # supplier -> product (amount: codes)
    TRANSFER = 2  # party -> party (amount: face value moved)


class GraphSnapshotError(ValidationError):
    code = "bad-analysis-snapshot"
    title = "Unreadable analysis snapshot"


class Origin(StrEnum):
    ISSUER = "issuer"
    ATTESTED = "attested"


_ORIGINS = (Origin.ISSUER, Origin.ATTESTED)


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """What the analysis keeps per code (``-1`` where a node id or sale is absent)."""

    fingerprint: str
    serial: str
    product: int
    batch: int
    origin: Origin
    holder: int
    sale: int


def _epoch(text: str) -> int:
    return math.floor(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def short_code(fingerprint_b64: str) -> str:
    """How evidence names a code: the first 12 hex digits of its fingerprint."""
    head = fingerprint_b64[:8]
    if len(head) == 8 and _BASE64_HEAD.fullmatch(head):
        # Eight base64 digits are exactly the first six bytes.
        return binascii.a2b_base64(head).hex()
    return base64.b64decode(fingerprint_b64)[:6].hex()


_BASE64_HEAD = re.compile("[A-Za-z0-9+/]{8}")


@dataclass(frozen=True, slots=True)
class GraphMark:
    """How far a graph had got: its counts of sales, codes, edges and reported payments,
    and of the holder changes logged since it was read (see :meth:`LedgerGraph.mark`).
    Sales, codes, edges and reports are only ever appended, so rows below a mark are
    the ones it saw."""

    sales: int
    codes: int
    edges: int
    stolen: int
    moves: int


class StringColumn:
    """Strings by index, as a list would hold them, for columns of millions of codes.

    Those read from a snapshot stay the section's bytes while they all have one length
    in UTF-8 (code fingerprints do): the string at ``i`` is a slice, many at once are
    cut out together (:meth:`take`), and :meth:`first_of` finds strings without making
    the others. Anything else (:meth:`strings`) splits the section once into a list.
    Strings added later are kept in a list after them.
    """

    __slots__ = ("_raw", "_read", "_strings", "_width")

    def __init__(self, strings: list[str] | None = None) -> None:
        self._raw: np.ndarray | None = None  # (read, width + 1) bytes, NUL last
        self._read = 0
        self._width = 0
        self._strings: list[str] = strings if strings is not None else []

    @classmethod
    def from_section(cls, raw: memoryview, count: int) -> StringColumn | None:
        """The column a section of :func:`_join` holds, or ``None`` if it does not hold
        ``count`` strings."""
        width = bytes(raw[:256]).find(b"\0") if count > 1 else len(raw)
        if count > 1 and 0 < width < 256 and len(raw) == count * (width + 1) - 1:
            cells = np.empty((count, width + 1), dtype=np.uint8)
            flat = cells.reshape(-1)
            flat[:-1] = np.frombuffer(raw, dtype=np.uint8)
            flat[-1] = 0
            # Every string ends where the next NUL is, and no string holds one.
            if not cells[:, width].any() and flat.size - np.count_nonzero(flat) == count:
                column = cls()
                column._raw, column._read, column._width = cells, count, width
                return column
        strings = _split(raw, count)
        return None if strings is None else cls(strings)

    def __len__(self) -> int:
        return self._read + len(self._strings)

    def __getitem__(self, i: int) -> str:
        if 0 <= i < self._read:
            assert self._raw is not None
            return str(self._raw[i, : self._width].tobytes(), "utf-8", "surrogatepass")
        if i < 0:
            raise IndexError("StringColumn takes no negative index")
        return self._strings[i - self._read]

    def extend(self, strings: Iterable[str]) -> None:
        self._strings.extend(strings)

    def strings(self) -> list[str]:
        """Every string, as a list (the section is split, once)."""
        if self._raw is not None:
            self._strings[:0] = self.take(np.arange(self._read))
            self._raw, self._read = None, 0
        return self._strings

    def take(self, indices: np.ndarray) -> list[str]:
        """The strings at ``indices`` (ascending or not), cut out together."""
        inside = indices[indices < self._read]
        if inside.shape[0] == indices.shape[0] and self._raw is not None:
            if not inside.shape[0]:
                return []
            joined = self._raw[inside].tobytes()[:-1]
            return str(joined, "utf-8", "surrogatepass").split("\0")
        return [self[int(i)] for i in indices]

    def first_of(self, wanted: set[str], below: int) -> dict[str, int]:
        """Each of ``wanted`` found among the first ``below`` strings, with the first
        index holding it."""
        found: dict[str, int] = {}
        below = min(below, len(self))
        if self._raw is None or self._width < 8:
            strings = self.strings()
            hits = np.fromiter(map(wanted.__contains__, strings[:below]), dtype=bool, count=below)
            candidates = np.flatnonzero(hits).tolist()
        else:
            # Compare the first eight bytes of every string at once, then the few
            # strings that match them in full.
            heads = np.ascontiguousarray(self._raw[: min(below, self._read), :8]).view("<u8")
            keys = [w.encode("utf-8", "surrogatepass") for w in wanted]
            wanted_heads = np.frombuffer(
                b"".join(k[:8] for k in keys if len(k) == self._width), dtype="<u8"
            )
            candidates = np.flatnonzero(np.isin(heads.ravel(), wanted_heads)).tolist()
            candidates += list(range(self._read, below))
        for i in candidates:
            string = self[i]
            if string in wanted and string not in found:
                found[string] = i
        return found

    def joined(self) -> bytes:
        """The strings as :func:`_join` writes them."""
        if self._raw is None:
            return _join(self._strings)
        head = self._raw.tobytes()[:-1]
        if not self._strings:
            return head
        tail = _join(self._strings)
        if tail.startswith(b"\0"):
            return _join(self.strings())
        return head + b"\0" + tail


@dataclass(slots=True)
class LedgerGraph:
    """The typed graph of the ledger read so far (see the module docstring).

    Attributes:
        last_seq: the last ledger seq applied (-1 before any).
        names, kind_codes: node names and kinds (as their place in :class:`NodeKind`:
            see :meth:`kind`), by node id.
        edge_*: one entry per edge.
        sale_*: one entry per sale (``-1`` where the sale left a field out);
            ``sale_code_index`` is the code sold (its index in the ``code_*`` columns).
        unknown_sold: per sale of a code the graph did not know when it was sold, the
            code's fingerprint (the ledger sells no such code; kept to show it).
        codes: per code fingerprint (base64), its index in the ``code_*`` columns. After
            a snapshot is read, only the unsold codes until an entry names another (the
            ledger moves no sold code, so a run over new entries seldom needs the rest):
            :meth:`code` and every reader of entries complete it first.
        code_*: one entry per code: fingerprint, serial fingerprint, product, batch,
            origin (0 issuer, 1 attested), holder and sale (node ids; ``-1`` if none).
        serials: per serial fingerprint, the first code (index) carrying it. After a
            snapshot is read it is built only when asked for; new codes look their
            serials up among the codes read from it by one pass over their serials.
        shared_serials: per serial fingerprint carried by two or more codes, those codes
            (indices, in the order recorded).
        stolen: per reported instrument or payment reference node id, the report's seq.
        attested: per party node id, how many codes it attested.
        received: per party node id, how many codes it received by transfer.
        face_values: per product node id, the face value of one code.
        party_kinds: per party node id, its registered kind (issuer, merchant, ...).
        memos: what detectors kept from their last run, by name: the graph's
            :class:`GraphMark` then and a JSON value (or a function returning one when
            the snapshot is written). Only memos taken at the graph's current state go
            into a snapshot.
    """

    last_seq: int = -1
    names: list[str] = field(default_factory=list)
    kind_codes: array[int] = field(default_factory=lambda: array("B"))
    _ids: dict[NodeKind, dict[str, int]] = field(
        default_factory=lambda: {kind: {} for kind in NodeKind}
    )
    edge_source: array[int] = field(default_factory=lambda: array("i"))
    edge_target: array[int] = field(default_factory=lambda: array("i"))
    edge_kind: array[int] = field(default_factory=lambda: array("b"))
    edge_amount: array[float] = field(default_factory=lambda: array("d"))
    edge_time: array[int] = field(default_factory=lambda: array("q"))
    edge_seq: array[int] = field(default_factory=lambda: array("q"))
    sale_code_index: array[int] = field(default_factory=lambda: array("i"))
    unknown_sold: dict[int, str] = field(default_factory=dict)
    sale_merchant: array[int] = field(default_factory=lambda: array("i"))
    sale_buyer: array[int] = field(default_factory=lambda: array("i"))
    sale_instrument: array[int] = field(default_factory=lambda: array("i"))
    sale_payment_ref: array[int] = field(default_factory=lambda: array("i"))
    sale_device: array[int] = field(default_factory=lambda: array("i"))
    sale_ip: array[int] = field(default_factory=lambda: array("i"))
    sale_amount: array[float] = field(default_factory=lambda: array("d"))
    sale_time: array[int] = field(default_factory=lambda: array("q"))
    sale_seq: array[int] = field(default_factory=lambda: array("q"))
    codes: dict[str, int] = field(default_factory=dict)
    _codes_complete: bool = True
    code_fp: StringColumn = field(default_factory=StringColumn)
    code_serial: StringColumn = field(default_factory=StringColumn)
    code_product: array[int] = field(default_factory=lambda: array("i"))
    code_batch: array[int] = field(default_factory=lambda: array("i"))
    code_origin: array[int] = field(default_factory=lambda: array("b"))
    code_holder: array[int] = field(default_factory=lambda: array("i"))
    code_sale: array[int] = field(default_factory=lambda: array("i"))
    _serials: dict[str, int] | None = field(default_factory=dict)
    # Serials of the codes added since the snapshot, while ``_serials`` is not built.
    _new_serials: dict[str, int] = field(default_factory=dict)
    shared_serials: dict[str, list[int]] = field(default_factory=dict)
    stolen: dict[int, int] = field(default_factory=dict)
    attested: dict[int, int] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    face_values: dict[int, float] = field(default_factory=dict)
    party_kinds: dict[int, str] = field(default_factory=dict)
    memos: dict[str, tuple[GraphMark, Any]] = field(default_factory=dict)
    _pending: tuple[list[str | None], ...] = field(
        default_factory=lambda: tuple([] for _ in range(6))
    )
    # How many codes came from a snapshot (their serials are not in ``_serials`` until
    # it is built).
    _read_codes: int = 0
    # Codes whose holder changed, logged only while some memo may need to know.
    _moved: array[int] = field(default_factory=lambda: array("i"))

    # --- nodes and edges ------------------------------------------------------------------

    def node(self, kind: NodeKind, name: str) -> int:
        """The id of the node ``(kind, name)``, added if new."""
        ids = self._ids[kind]
        found = ids.get(name)
        if found is None:
            found = ids[name] = len(self.names)
            self.names.append(name)
            self.kind_codes.append(_KIND_CODES[kind])
        return found

    def kind(self, node: int) -> NodeKind:
        return _KINDS[self.kind_codes[node]]

    def find(self, kind: NodeKind, name: str) -> int | None:
        return self._ids[kind].get(name)

    def _optional(self, kind: NodeKind, name: str | None) -> int:
        if name is None:
            return -1
        found = self._ids[kind].get(name)
        return found if found is not None else self.node(kind, name)

    def _edge(
        self, source: int, target: int, kind: EdgeKind, amount: float, time: int, seq: int
    ) -> None:
        self.edge_source.append(source)
        self.edge_target.append(target)
        self.edge_kind.append(int(kind))
        self.edge_amount.append(amount)
        self.edge_time.append(time)
        self.edge_seq.append(seq)

    @property
    def n_edges(self) -> int:
        return len(self.edge_source)

    @property
    def n_sales(self) -> int:
        return len(self.sale_seq)

    # --- what detectors keep between runs ----------------------------------------------------

    def mark(self) -> GraphMark:
        """The graph's extent now (sales are counted as flushed)."""
        self.flush()
        return GraphMark(
            self.n_sales, len(self.code_fp), self.n_edges, len(self.stolen), len(self._moved)
        )

    def remember(self, name: str, value: Any) -> None:
        """Keep ``value`` (JSON, or a function returning it when the snapshot is written)
        under ``name``, marked with the graph's extent now."""
        self.memos[name] = (self.mark(), value)

    def recall(self, name: str) -> tuple[GraphMark, Any] | None:
        """What was kept under ``name`` and the graph's extent then, or ``None``."""
        return self.memos.get(name)

    def changed_codes(self, since: GraphMark) -> tuple[np.ndarray, np.ndarray]:
        """Whether each code's record changed after ``since`` (it is new, or its holder
        moved), and whether each sale shows such a code (a boolean per code, per
        sale). A sale of a code the graph did not know when sold counts as changed
        once codes have come since: it may be one of them."""
        changed = np.zeros(len(self.code_fp), dtype=bool)
        changed[since.codes :] = True
        moved = np.frombuffer(self._moved, dtype=np.int32)[since.moves :]
        changed[moved] = True
        index = np.frombuffer(self.sale_code_index, dtype=np.int32)
        sales = np.r_[changed, since.codes < len(self.code_fp)][index]
        return changed, sales

    # --- reading entries ------------------------------------------------------------------

    def apply(self, seq: int, kind: str, time: int, actor: str, body: dict[str, Any]) -> None:
        """Take one ledger entry into the graph. Entries must come in seq order.

        Raises:
            ValueError: ``seq`` is not after the last one applied.
        """
        if seq <= self.last_seq:
            raise ValueError(f"entry {seq} is not after {self.last_seq}")
        self.last_seq = seq
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, seq, time, actor, body)

    def _party_register(self, seq: int, time: int, actor: str, body: dict[str, Any]) -> None:
        self.party_kinds[self.node(NodeKind.PARTY, body["party"])] = body["kind"]

    def _product_register(self, seq: int, time: int, actor: str, body: dict[str, Any]) -> None:
        product = self.node(NodeKind.PRODUCT, body["product"])
        self.face_values[product] = float(body["face_value"])

    def _batch_codes(self, seq: int, time: int, actor: str, body: dict[str, Any]) -> None:
        issuer = self.node(NodeKind.PARTY, actor)
        product = self.node(NodeKind.PRODUCT, body["product"])
        batch = self.node(NodeKind.BATCH, body["batch"])
        self._new_codes(body["codes"], product, batch, Origin.ISSUER, issuer)
        self._edge(issuer, batch, EdgeKind.ISSUE, float(len(body["codes"])), time, seq)

    def _attest(self, seq: int, time: int, actor: str, body: dict[str, Any]) -> None:
        supplier = self.node(NodeKind.PARTY, actor)
        product = self.node(NodeKind.PRODUCT, body["product"])
        self._new_codes(body["codes"], product, -1, Origin.ATTESTED, supplier)
        self.attested[supplier] = self.attested.get(supplier, 0) + len(body["codes"])
        self._edge(supplier, product, EdgeKind.ATTEST, float(len(body["codes"])), time, seq)

    def _new_codes(
        self,
        pairs: list[tuple[str, str]],
        product: int,
        batch: int,
        origin: Origin,
        holder: int,
    ) -> None:
        """Add a batch's or an attestation's codes, column by column (a batch is often
        thousands of codes)."""
        start, count = len(self.code_fp), len(pairs)
        fingerprints = [pair[0] for pair in pairs]
        serials = [pair[1] for pair in pairs]
        indices = range(start, start + count)
        self.codes.update(zip(fingerprints, indices, strict=True))
        self.code_fp.extend(fingerprints)
        self.code_serial.extend(serials)
        self.code_product.extend(array("i", [product]) * count)
        self.code_batch.extend(array("i", [batch]) * count)
        self.code_origin.extend(array("b", [_ORIGINS.index(origin)]) * count)
        self.code_holder.extend(array("i", [holder]) * count)
        self.code_sale.extend(array("i", [-1]) * count)
        if self._serials is None:
            self._first_among_read(serials)
            first_of = self._new_serials.setdefault
        else:
            first_of = self._serials.setdefault
        for serial, index in zip(serials, indices, strict=True):
            first = first_of(serial, index)
            if first != index:
                self.shared_serials.setdefault(serial, [first]).append(index)

    def _first_among_read(self, serials: list[str]) -> None:
        """Enter into ``_new_serials`` the first code read from the snapshot carrying
        each of ``serials`` (a search among the snapshot's serials, not a dictionary
        of all of them)."""
        wanted = set(serials).difference(self._new_serials)
        if wanted:
            found = self.code_serial.first_of(wanted, self._read_codes)
            for serial, i in found.items():
                self._new_serials.setdefault(serial, i)

    @property
    def serials(self) -> dict[str, int]:
        if self._serials is None:
            serials = self.code_serial.strings()
            n = len(serials)
            self._serials = dict(zip(reversed(serials), range(n - 1, -1, -1), strict=True))
            self._new_serials = {}
        return self._serials

    def _complete_codes(self) -> None:
        """Make :attr:`codes` name every code (see the class docstring)."""
        if not self._codes_complete:
            fingerprints = self.code_fp.strings()
            self.codes = dict(zip(fingerprints, range(len(fingerprints)), strict=True))
            self._codes_complete = True

    def code_index(self, fingerprint: str) -> int | None:
        """The index of a code in the ``code_*`` columns, or ``None``."""
        found = self.codes.get(fingerprint)
        if found is None and not self._codes_complete:
            self._complete_codes()
            found = self.codes.get(fingerprint)
        return found

    def code(self, fingerprint: str) -> CodeRecord | None:
        """The record of one code, or ``None`` if the graph never saw it."""
        i = self.code_index(fingerprint)
        if i is None:
            return None
        return CodeRecord(
            fingerprint,
            self.code_serial[i],
            self.code_product[i],
            self.code_batch[i],
            _ORIGINS[self.code_origin[i]],
            self.code_holder[i],
            self.code_sale[i],
        )

    def _transfer(self, seq: int, time: int, actor: str, body: dict[str, Any]) -> None:
        sender = self.node(NodeKind.PARTY, body["from"])
        recipient = self.node(NodeKind.PARTY, body["to"])
        moved = body["codes"]
        faces = self.face_values
        if not self._codes_complete and not all(map(self.codes.__contains__, moved)):
            self._complete_codes()
        if len(moved) < _BULK_TRANSFER:
            value = 0.0
            codes, holder, product = self.codes, self.code_holder, self.code_product
            log = self._moved.append if self.memos else None
            for fingerprint in moved:
                i = codes.get(fingerprint)
                if i is not None:
                    holder[i] = recipient
                    value += faces.get(product[i], 0.0)
                    if log is not None:
                        log(i)
        else:
            # A wholesale lot: look the codes up in one pass, then move them and price
            # them by product with numpy over views of the code columns.
            found = np.fromiter(
                map(self.codes.get, moved, repeat(-1)), dtype=np.int64, count=len(moved)
            )
            found = found[found >= 0]
            if self.memos:
                self._moved.frombytes(found.astype(np.int32).tobytes())
            holder_view = np.frombuffer(self.code_holder, dtype=np.int32)
            holder_view[found] = recipient
            products, counts = np.unique(
                np.frombuffer(self.code_product, dtype=np.int32)[found], return_counts=True
            )
            # Release the views: an array exporting its buffer cannot grow.
            del holder_view
            value = sum(
                faces.get(int(p), 0.0) * int(c)
                for p, c in zip(products.tolist(), counts.tolist(), strict=True)
            )
        self.received[recipient] = self.received.get(recipient, 0) + len(body["codes"])
        self._edge(sender, recipient, EdgeKind.TRANSFER, value, time, seq)

    def _sale(self, seq: int, time: int, actor: str, body: dict[str, Any]) -> None:
        # The hot path of a ledger mostly made of sales: the names are kept as they come
        # and turned into node ids in bulk by flush(), one lookup per distinct name.
        get = body.get
        code = self.codes.get(body["code"])
        if code is None and not self._codes_complete:
            code = self.code_index(body["code"])
        if code is not None:
            self.code_sale[code] = len(self.sale_seq)
        if code is None:
            self.unknown_sold[len(self.sale_seq)] = body["code"]
            code = -1
        self.sale_code_index.append(code)
        pending = self._pending
        pending[0].append(actor)
        pending[1].append(body["buyer"])
        pending[2].append(get("instrument"))
        pending[3].append(get("payment_ref"))
        pending[4].append(get("device"))
        pending[5].append(get("ip"))
        self.sale_amount.append(float(body["amount"]))
        self.sale_time.append(time)
        self.sale_seq.append(seq)

    def flush(self) -> None:
        """Turn the names of the sales applied since the last flush into node ids.
        Every reader of the sale columns calls it first."""
        if not self._pending[0]:
            return
        columns = (
            (NodeKind.PARTY, self.sale_merchant),
            (NodeKind.BUYER, self.sale_buyer),
            (NodeKind.INSTRUMENT, self.sale_instrument),
            (NodeKind.PAYMENT_REF, self.sale_payment_ref),
            (NodeKind.DEVICE, self.sale_device),
            (NodeKind.IP, self.sale_ip),
        )
        for (kind, column), names in zip(columns, self._pending, strict=True):
            known = self._ids[kind]
            fresh = sorted(name for name in set(names) if name is not None and name not in known)
            if fresh:
                start = len(self.names)
                known.update(zip(fresh, range(start, start + len(fresh)), strict=True))
                self.names.extend(fresh)
                self.kind_codes.extend(array("B", [_KIND_CODES[kind]]) * len(fresh))
            # dict.get with a default, mapped in C: absent fields (None) become -1.
            lookup: Callable[[str | None, int], int] = known.get  # type: ignore[assignment]
            ids = np.fromiter(map(lookup, names, repeat(-1)), dtype=np.int32, count=len(names))
            column.frombytes(ids.tobytes())
            names.clear()

    def _stolen(self, seq: int, time: int, actor: str, body: dict[str, Any]) -> None:
        kind = NodeKind.INSTRUMENT if body["kind"] == "instrument" else NodeKind.PAYMENT_REF
        self.stolen.setdefault(self.node(kind, body["pseudonym"]), seq)

    # --- views for the detectors ------------------------------------------------------------

    def _dense(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``numpy.unique(ids, return_inverse=True)`` for node ids, in linear time: the
        ids present, ascending, and each id's place among them."""
        present = np.zeros(len(self.names), dtype=bool)
        present[ids] = True
        nodes = np.flatnonzero(present)
        place = np.cumsum(present, dtype=np.int64) - 1
        return nodes, place[ids]

    def sales_table(self) -> TransferTable:
        """The sales as a transfer list, buyer to merchant, with the buyer's device, IP
        and instrument as attribute columns, for the account-to-account detectors. Row
        ``i`` is sale ``i``; account ``j`` of the table is node ``accounts[j]``."""
        buyers = np.frombuffer(self.sale_buyer, dtype=np.int32)
        merchants = np.frombuffer(self.sale_merchant, dtype=np.int32)
        nodes, inverse = self._dense(np.concatenate([buyers, merchants]))
        n = buyers.shape[0]
        attributes: dict[str, np.ndarray] = {}
        values: dict[str, list[str]] = {}
        for column, ids in (
            ("device", self.sale_device),
            ("ip", self.sale_ip),
            ("instrument", self.sale_instrument),
        ):
            raw = np.frombuffer(ids, dtype=np.int32)
            used, local = self._dense(raw[raw >= 0])
            mapped = np.full(n, -1, dtype=np.int32)
            mapped[raw >= 0] = local.astype(np.int32)
            attributes[column] = mapped
            values[column] = [self.names[int(v)] for v in used]
        return TransferTable(
            accounts=[self.names[int(v)] for v in nodes],
            source=inverse[:n].astype(np.int32),
            target=inverse[n:].astype(np.int32),
            amount=np.frombuffer(self.sale_amount, dtype=np.float64).copy(),
            time=np.frombuffer(self.sale_time, dtype=np.int64).copy(),
            attributes=attributes,
            attribute_values=values,
        )

    def custody_table(self) -> tuple[TransferTable, list[int]]:
        """Custody transfers between parties as a transfer list (face value moved), and
        the edge index of each row."""
        kinds = np.frombuffer(self.edge_kind, dtype=np.int8)
        rows = np.flatnonzero(kinds == EdgeKind.TRANSFER)
        source = np.frombuffer(self.edge_source, dtype=np.int32)[rows]
        target = np.frombuffer(self.edge_target, dtype=np.int32)[rows]
        nodes, inverse = self._dense(np.concatenate([source, target]))
        n = rows.shape[0]
        table = TransferTable(
            accounts=[self.names[int(v)] for v in nodes],
            source=inverse[:n].astype(np.int32),
            target=inverse[n:].astype(np.int32),
            amount=np.frombuffer(self.edge_amount, dtype=np.float64)[rows].copy(),
            time=np.frombuffer(self.edge_time, dtype=np.int64)[rows].copy(),
        )
        return table, [int(r) for r in rows]

    # --- evidence ---------------------------------------------------------------------------

    def _add_node(self, graph: nx.MultiDiGraph, node: int) -> str:
        kind = _KIND_VALUES[self.kind_codes[node]]
        name = self.names[node]
        label = f"{kind}:{name}"
        # A node is drawn with the same kind and name each time; add it once.
        if label not in graph:
            graph.add_node(label, kind=kind, name=name)
        return label

    def subgraph(
        self,
        *,
        edges: Iterable[int] = (),
        sales: Iterable[int] = (),
        codes: Iterable[int] = (),
        nodes: Iterable[int] = (),
        **attributes: Any,
    ) -> nx.MultiDiGraph:
        """Evidence: the given edges, sales (merchant -> code -> buyer, with what paid
        and what was used), codes (by index, with origin and holder) and nodes."""
        self.flush()
        graph: nx.MultiDiGraph = nx.MultiDiGraph(**attributes)
        for node in nodes:
            self._add_node(graph, node)
        for e in edges:
            source = self._add_node(graph, self.edge_source[e])
            target = self._add_node(graph, self.edge_target[e])
            graph.add_edge(
                source,
                target,
                kind=EdgeKind(self.edge_kind[e]).name.lower(),
                amount=self.edge_amount[e],
                time=format_epoch(self.edge_time[e]),
                seq=self.edge_seq[e],
            )
        for i in codes:
            self._code_node(graph, self.code_fp[i], i)
        for s in sales:
            index = self.sale_code_index[s]
            if index >= 0:
                code = self._code_node(graph, self.code_fp[index], index)
            else:
                # A code the graph did not know when sold may have come since.
                fingerprint = self.unknown_sold[s]
                code = self._code_node(graph, fingerprint, self.code_index(fingerprint))
            merchant = self._add_node(graph, self.sale_merchant[s])
            buyer = self._add_node(graph, self.sale_buyer[s])
            when = format_epoch(self.sale_time[s])
            common = {"time": when, "seq": self.sale_seq[s]}
            graph.add_edge(merchant, code, kind="sold", amount=self.sale_amount[s], **common)
            graph.add_edge(code, buyer, kind="bought", amount=self.sale_amount[s], **common)
            for column, kind in (
                (self.sale_instrument, "paid_with"),
                (self.sale_payment_ref, "paid_with"),
                (self.sale_device, "used"),
                (self.sale_ip, "used"),
            ):
                if column[s] >= 0:
                    graph.add_edge(buyer, self._add_node(graph, column[s]), kind=kind, **common)
        return graph

    def _code_node(self, graph: nx.MultiDiGraph, fingerprint: str, i: int | None) -> str:
        label = f"code:{short_code(fingerprint)}"
        if i is None:
            graph.add_node(label, kind="code", origin="unknown")
            return label
        graph.add_node(
            label,
            kind="code",
            origin=_ORIGINS[self.code_origin[i]].value,
            serial=short_code(self.code_serial[i]),
            product=self.names[self.code_product[i]],
        )
        holder = self._add_node(graph, self.code_holder[i])
        graph.add_edge(holder, label, kind="holds")
        if self.code_batch[i] >= 0:
            graph.add_edge(self._add_node(graph, self.code_batch[i]), label, kind="contains")
        return label

    # --- persistence ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The graph as bytes: the snapshot magic, a version, a small JSON header, then
        every column as raw bytes (numbers as the arrays hold them, little-endian; names
        and fingerprints as UTF-8 joined by NUL), and a CRC-32 of everything before it.
        Nothing is compressed, so reading it back is copying, splitting and hashing."""
        self.flush()
        sections: list[tuple[str, str, int, bytes]] = []
        for name in _ARRAYS:
            column = getattr(self, name)
            sections.append((name, column.typecode, len(column), _little_endian(column)))
        kinds = self.kind_codes.tobytes()
        sections.append(("kinds", "B", len(kinds), kinds))
        sections.append(("names", "str", len(self.names), _join(self.names)))
        for name in _COLUMNS:
            codes: StringColumn = getattr(self, name)
            sections.append((name, "str", len(codes), codes.joined()))
        header = {
            "last_seq": self.last_seq,
            "sections": [[name, kind, count, len(raw)] for name, kind, count, raw in sections],
            "shared_serials": self.shared_serials,
            "stolen": list(self.stolen.items()),
            "unknown_sold": list(self.unknown_sold.items()),
            "attested": list(self.attested.items()),
            "received": list(self.received.items()),
            "face_values": list(self.face_values.items()),
            "party_kinds": list(self.party_kinds.items()),
            "memos": self._current_memos(),
        }
        head = orjson.dumps(header)
        parts = [
            _MAGIC,
            _HEAD.pack(SNAPSHOT_VERSION, len(head)),
            head,
            *(raw for _, _, _, raw in sections),
        ]
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        parts.append(_CRC.pack(crc))
        return b"".join(parts)

    def _current_memos(self) -> dict[str, Any]:
        """The memos taken at the graph's current state, as JSON: the others no longer
        describe it, and the holder changes they would need are not kept."""
        now = self.mark()
        return {
            name: value() if callable(value) else value
            for name, (mark, value) in self.memos.items()
            if mark == now
        }

    @classmethod
    def from_bytes(cls, raw: bytes) -> LedgerGraph:
        """Read :meth:`to_bytes`' output.

        Raises:
            GraphSnapshotError: the bytes are not a whole snapshot of this version (an
                older snapshot, a truncated or altered one, or something else).
        """
        if not raw.startswith(_MAGIC):
            raise GraphSnapshotError("the analysis snapshot is of another version or damaged")
        at = len(_MAGIC)
        if len(raw) < at + _HEAD.size + _CRC.size:
            raise GraphSnapshotError("the analysis snapshot is truncated")
        version, head_size = _HEAD.unpack_from(raw, at)
        if version != SNAPSHOT_VERSION:
            raise GraphSnapshotError(
                f"the analysis snapshot is of version {version}, not {SNAPSHOT_VERSION}"
            )
        body = memoryview(raw)[: len(raw) - _CRC.size]
        if zlib.crc32(body) != _CRC.unpack_from(raw, len(body))[0]:
            raise GraphSnapshotError("the analysis snapshot is damaged (checksum mismatch)")
        try:
            return cls._from_sections(body, at + _HEAD.size, head_size)
        except GraphSnapshotError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise GraphSnapshotError(f"the analysis snapshot cannot be read ({e})") from e

    @classmethod
    def _from_sections(cls, body: memoryview, at: int, head_size: int) -> LedgerGraph:
        header = orjson.loads(body[at : at + head_size])
        at += head_size
        sections: dict[str, tuple[str, int, memoryview]] = {}
        for name, kind, count, size in header["sections"]:
            if not isinstance(size, int) or size < 0 or at + size > len(body):
                raise GraphSnapshotError("the analysis snapshot is truncated")
            sections[name] = (kind, count, body[at : at + size])
            at += size
        if at != len(body) or set(sections) != {*_ARRAYS, "kinds", "names", *_COLUMNS}:
            raise GraphSnapshotError("the analysis snapshot's sections do not match")
        graph = cls(last_seq=int(header["last_seq"]))
        for name in _ARRAYS:
            column = getattr(graph, name)
            kind, count, raw = sections[name]
            if kind != column.typecode or len(raw) != count * column.itemsize:
                raise GraphSnapshotError(f"the analysis snapshot's {name} does not match")
            column.frombytes(raw)
            if _BIG_ENDIAN:
                column.byteswap()
        kind, count, raw = sections["names"]
        names = _split(raw, count)
        if kind != "str" or names is None:
            raise GraphSnapshotError("the analysis snapshot's names do not match")
        graph.names = names
        for name in _COLUMNS:
            kind, count, raw = sections[name]
            column = StringColumn.from_section(raw, count)
            if kind != "str" or column is None:
                raise GraphSnapshotError(f"the analysis snapshot's {name} does not match")
            setattr(graph, name, column)
        _, _, kind_raw = sections["kinds"]
        codes = np.frombuffer(kind_raw, dtype=np.uint8)
        kinds = list(NodeKind)
        if codes.shape[0] != len(graph.names) or (codes.size and int(codes.max()) >= len(kinds)):
            raise GraphSnapshotError("the analysis snapshot's nodes do not match")
        graph.kind_codes.frombytes(kind_raw)
        for code, kind in enumerate(kinds):
            ids = np.flatnonzero(codes == code).tolist()
            graph._ids[kind] = dict(zip(map(graph.names.__getitem__, ids), ids, strict=True))
        graph._check_lengths()
        unsold = np.flatnonzero(np.frombuffer(graph.code_sale, dtype=np.int32) < 0).tolist()
        unsold_fp = graph.code_fp.take(np.array(unsold, dtype=np.int64))
        graph.codes = dict(zip(unsold_fp, unsold, strict=True))
        graph._codes_complete = len(unsold) == len(graph.code_fp)
        graph._serials = None
        graph._read_codes = len(graph.code_fp)
        graph.shared_serials = {
            str(k): [int(i) for i in v] for k, v in header["shared_serials"].items()
        }
        graph.stolen = {int(k): int(v) for k, v in header["stolen"]}
        graph.unknown_sold = {int(k): str(v) for k, v in header["unknown_sold"]}
        unknown = np.flatnonzero(np.frombuffer(graph.sale_code_index, dtype=np.int32) < 0)
        if set(unknown.tolist()) != set(graph.unknown_sold):
            raise GraphSnapshotError("the analysis snapshot's sold codes do not match")
        graph.attested = {int(k): int(v) for k, v in header["attested"]}
        graph.received = {int(k): int(v) for k, v in header["received"]}
        graph.face_values = {int(k): float(v) for k, v in header["face_values"]}
        graph.party_kinds = {int(k): str(v) for k, v in header["party_kinds"]}
        memos = header["memos"]
        if not isinstance(memos, dict):
            raise GraphSnapshotError("the analysis snapshot's memos do not match")
        mark = graph.mark()
        graph.memos = {str(name): (mark, value) for name, value in memos.items()}
        return graph

    def _check_lengths(self) -> None:
        """Every column of a group has the same length, and node ids are in range."""
        groups = {
            "code": [len(self.code_fp), len(self.code_serial)]
            + [len(getattr(self, n)) for n in _ARRAYS if n.startswith("code_")],
            "edge": [len(getattr(self, n)) for n in _ARRAYS if n.startswith("edge_")],
            "sale": [] + [len(getattr(self, n)) for n in _ARRAYS if n.startswith("sale_")],
        }
        for group, lengths in groups.items():
            if len(set(lengths)) != 1:
                raise GraphSnapshotError(f"the analysis snapshot's {group} columns do not match")
        bounds = (
            (_NODE_COLUMNS, len(self.names)),
            (("sale_code_index",), len(self.code_fp)),
            (("code_sale",), len(self.sale_seq)),
        )
        for names, bound in bounds:
            for name in names:
                ids = np.frombuffer(getattr(self, name), dtype=np.int32)
                if ids.size and (int(ids.min()) < -1 or int(ids.max()) >= bound):
                    raise GraphSnapshotError(f"the analysis snapshot's {name} is out of range")


_KINDS = tuple(NodeKind)
_KIND_CODES = {kind: code for code, kind in enumerate(NodeKind)}
_KIND_VALUES = tuple(kind.value for kind in NodeKind)
# Transfers of at least this many codes are applied with numpy (see _transfer).
_BULK_TRANSFER = 32
# What a snapshot starts with; the version and the header's length follow.
_MAGIC = b"cardtrace-ledger-graph\n"
_HEAD = struct.Struct("<II")
_CRC = struct.Struct("<I")
_BIG_ENDIAN = sys.byteorder == "big"
# Strings of codes, kept as StringColumn.
_COLUMNS = ("code_fp", "code_serial")
_ARRAYS = (
    "code_product",
    "code_batch",
    "code_origin",
    "code_holder",
    "code_sale",
    "edge_source",
    "edge_target",
    "edge_kind",
    "edge_amount",
    "edge_time",
    "edge_seq",
    "sale_code_index",
    "sale_merchant",
    "sale_buyer",
    "sale_instrument",
    "sale_payment_ref",
    "sale_device",
    "sale_ip",
    "sale_amount",
    "sale_time",
    "sale_seq",
)

# Columns of node ids (-1 where absent).
_NODE_COLUMNS = (
    "code_product",
    "code_batch",
    "code_holder",
    "edge_source",
    "edge_target",
    "sale_merchant",
    "sale_buyer",
    "sale_instrument",
    "sale_payment_ref",
    "sale_device",
    "sale_ip",
)


def _little_endian(column: array[Any]) -> bytes:
    if not _BIG_ENDIAN:
        return column.tobytes()
    swapped = array(column.typecode, column)
    swapped.byteswap()
    return swapped.tobytes()


def _join(strings: list[str]) -> bytes:
    """Strings as UTF-8 joined by NUL; a string holding NUL itself is escaped as JSON
    (the section then starts with a NUL, which no joined list of plain strings does
    unless its first string is empty, so an empty first string is escaped too)."""
    joined = "\0".join(strings)
    if joined.count("\0") == max(len(strings) - 1, 0) and not (strings and strings[0] == ""):
        return joined.encode("utf-8", "surrogatepass")
    return b"\0" + orjson.dumps(strings)


def _split(raw: memoryview, count: int) -> list[str] | None:
    """Inverse of :func:`_join`, or ``None`` if ``raw`` does not hold ``count`` strings."""
    strings: list[str]
    if bytes(raw[:1]) == b"\0":
        loaded = orjson.loads(raw[1:])
        if not isinstance(loaded, list) or not all(isinstance(s, str) for s in loaded):
            return None
        strings = loaded
    elif not raw:
        strings = []
    else:
        strings = str(raw, "utf-8", "surrogatepass").split("\0")
    return strings if len(strings) == count else None


_HANDLERS = {
    "party.register": LedgerGraph._party_register,
    "product.register": LedgerGraph._product_register,
    "batch.codes": LedgerGraph._batch_codes,
    "code.attest": LedgerGraph._attest,
    "code.transfer": LedgerGraph._transfer,
    "code.sale": LedgerGraph._sale,
    "payment.stolen": LedgerGraph._stolen,
}


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Leave the objects alive now out of the cyclic garbage collector's passes until
    the block ends (:func:`gc.freeze`). A graph read from a snapshot holds lists of
    millions of strings (node names, code fingerprints and serials) that each full
    collection would walk through, about 0.1 s a time at a million events, and none of
    them is garbage. Does nothing when objects are frozen already: that freeze is
    someone else's, not ours to undo."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def ledger_events(
    session: Session, start: int = 0
) -> Iterator[tuple[int, str, int, str, dict[str, Any]]]:
    """``(seq, type, time, actor, body)`` of every entry from ``start`` on, in order."""
    for seq, raw, _ in iter_records(session, start):
        entry = orjson.loads(raw)["entry"]
        yield seq, entry["type"], _epoch(entry["time"]), entry["actor"], entry["body"]


def read_ledger(session: Session, graph: LedgerGraph | None = None) -> tuple[LedgerGraph, int]:
    """Bring ``graph`` (or a new one) up to the ledger's last entry.

    Returns:
        The graph and how many entries were read (only those after its ``last_seq``).
    """
    graph = graph if graph is not None else LedgerGraph()
    count = 0
    for seq, kind, time, actor, body in ledger_events(session, graph.last_seq + 1):
        graph.apply(seq, kind, time, actor, body)
        count += 1
    graph.flush()
    return graph, count
