"""Investigators' cases: alerts, merchants, buyers, instruments and codes grouped,
assigned, moved through their statuses, noted and given files, every action a ledger
entry (see docs/CASES.md).

The public API, for the evidence package and partner reports alike:

- :func:`get_case` / :func:`list_cases` give :class:`CaseView` values: the case, its
  :class:`Member` s (kind and value: pseudonyms and fingerprints only), its timeline and
  ``seqs``, the ledger entries of its own actions;
- :func:`related_entries` gives every ledger seq behind the case and each member.
"""

from provenance.cases.attachments import AttachmentStore, StoredFile, sanitise_name
from provenance.cases.entries import (
    CASE_TYPES,
    TRANSITIONS,
    CaseClosedError,
    CaseError,
    CaseInputError,
    CaseNotFoundError,
    CaseOutcome,
    CaseStatus,
    CaseTransitionError,
    MemberExistsError,
    MemberKind,
    cases_catalog,
)
from provenance.cases.models import CaseAttachment, CaseEvent, CaseFile, CaseMember, CaseText
from provenance.cases.related import RelatedEntries, party_decisions, related_entries
from provenance.cases.service import (
    Attachment,
    CaseView,
    Event,
    Member,
    Note,
    add_members,
    add_note,
    assign_case,
    attach_file,
    case_json,
    change_status,
    get_case,
    list_cases,
    normalise_member,
    open_case,
)

__all__ = [
    "CASE_TYPES",
    "TRANSITIONS",
    "Attachment",
    "AttachmentStore",
    "CaseAttachment",
    "CaseClosedError",
    "CaseError",
    "CaseEvent",
    "CaseFile",
    "CaseInputError",
    "CaseMember",
    "CaseNotFoundError",
    "CaseOutcome",
    "CaseStatus",
    "CaseText",
    "CaseTransitionError",
    "CaseView",
    "Event",
    "Member",
    "MemberExistsError",
    "MemberKind",
    "Note",
    "RelatedEntries",
    "StoredFile",
    "add_members",
    "add_note",
    "assign_case",
    "attach_file",
    "case_json",
    "cases_catalog",
    "change_status",
    "get_case",
    "list_cases",
    "normalise_member",
    "open_case",
    "party_decisions",
    "related_entries",
    "sanitise_name",
]
