"""merchant onboarding: officers, applications, documents, checks, states, registries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import provenance.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = provenance.db.UTCDateTime


def _id() -> Any:
    return sa.Column("id", BIGID, autoincrement=True, nullable=False)


def _application_id(table: str) -> list[Any]:
    return [
        sa.Column("application_id", BIGID, nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["onboarding_application.id"],
            name=op.f(f"fk_{table}_application_id_onboarding_application"),
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "onboarding_officer",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("disabled_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_officer")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_onboarding_officer_token_hash")),
    )
    op.create_table(
        "onboarding_application",
        _id(),
        sa.Column("merchant", sa.String(length=64), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("live_credit_code", sa.String(length=18), nullable=True),
        sa.Column("legal_rep_name", sa.String(length=100), nullable=True),
        sa.Column("legal_rep_id_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("legal_rep_id_masked", sa.String(length=18), nullable=True),
        sa.Column("registered_address", sa.String(length=500), nullable=True),
        sa.Column("domain", sa.String(length=253), nullable=True),
        sa.Column("icp_number", sa.String(length=64), nullable=True),
        sa.Column("payment_licence", sa.String(length=32), nullable=True),
        sa.Column("clearing_institution", sa.String(length=200), nullable=True),
        sa.Column("fund_custody", sa.String(length=32), nullable=True),
        sa.Column("user_agreement_url", sa.String(length=500), nullable=True),
        sa.Column("privacy_policy_url", sa.String(length=500), nullable=True),
        sa.Column("bank_name", sa.String(length=100), nullable=True),
        sa.Column("bank_account_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("bank_account_masked", sa.String(length=40), nullable=True),
        sa.Column("bank_account_lookup", sa.LargeBinary(length=32), nullable=True),
        sa.Column("applicant_token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("check_run", sa.Integer(), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=True),
        sa.Column("risk_level", sa.String(length=8), nullable=True),
        sa.Column("risk", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_application")),
        sa.UniqueConstraint(
            "applicant_token_hash", name=op.f("uq_onboarding_application_applicant_token_hash")
        ),
        sa.UniqueConstraint(
            "live_credit_code", name=op.f("uq_onboarding_application_live_credit_code")
        ),
    )
    op.create_index(
        op.f("ix_onboarding_application_merchant"), "onboarding_application", ["merchant"]
    )
    op.create_index(
        op.f("ix_onboarding_application_credit_code"), "onboarding_application", ["credit_code"]
    )
    op.create_index(
        op.f("ix_onboarding_application_bank_account_lookup"),
        "onboarding_application",
        ["bank_account_lookup"],
    )
    op.create_table(
        "onboarding_owner",
        _id(),
        *_application_id("onboarding_owner"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("share_bp", sa.Integer(), nullable=False),
        sa.Column("id_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("id_masked", sa.String(length=18), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_owner")),
    )
    op.create_table(
        "onboarding_blob",
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_onboarding_blob")),
    )
    op.create_table(
        "onboarding_document",
        _id(),
        *_application_id("onboarding_document"),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["onboarding_blob.sha256"],
            name=op.f("fk_onboarding_document_sha256_onboarding_blob"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_document")),
        sa.UniqueConstraint(
            "application_id", "sha256", name=op.f("uq_onboarding_document_application_id")
        ),
    )
    op.create_table(
        "onboarding_check",
        _id(),
        *_application_id("onboarding_check"),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("extract_date", sa.Date(), nullable=True),
        sa.Column("checked_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_check")),
    )
    op.create_table(
        "onboarding_question",
        _id(),
        *_application_id("onboarding_question"),
        sa.Column("asked_by", sa.String(length=64), nullable=False),
        sa.Column("asked_at", UTC(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_question")),
    )
    op.create_table(
        "onboarding_amendment",
        _id(),
        *_application_id("onboarding_amendment"),
        sa.Column("officer", sa.String(length=64), nullable=False),
        sa.Column("fields", sa.String(length=500), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_amendment")),
    )
    for table in (
        "onboarding_owner",
        "onboarding_document",
        "onboarding_check",
        "onboarding_question",
        "onboarding_amendment",
    ):
        op.create_index(op.f(f"ix_{table}_application_id"), table, ["application_id"])
    op.create_index(op.f("ix_onboarding_document_sha256"), "onboarding_document", ["sha256"])
    op.create_table(
        "onboarding_status",
        sa.Column("application_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("merchant", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("since", UTC(), nullable=False),
        sa.Column("state_seq", sa.BigInteger(), nullable=False),
        sa.Column("submitted_at", UTC(), nullable=True),
        sa.Column("renewal", sa.Boolean(), nullable=False),
        sa.Column("recommendation", sa.String(length=16), nullable=True),
        sa.Column("recommended_by", sa.String(length=64), nullable=True),
        sa.Column("recommended_at", UTC(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", UTC(), nullable=True),
        sa.Column("expires_at", UTC(), nullable=True),
        sa.Column("next_review_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_onboarding_status")),
    )
    op.create_index(op.f("ix_onboarding_status_merchant"), "onboarding_status", ["merchant"])
    op.create_index(op.f("ix_onboarding_status_state"), "onboarding_status", ["state"])
    op.create_table(
        "onboarding_history",
        sa.Column("application_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("application_id", "seq", name=op.f("pk_onboarding_history")),
    )
    op.create_table(
        "registry_extract",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("extract_date", sa.Date(), nullable=False),
        sa.Column("imported_at", UTC(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_registry_extract")),
    )
    op.create_table(
        "registry_enterprise",
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("established", sa.Date(), nullable=True),
        sa.Column("capital", sa.String(length=64), nullable=True),
        sa.Column("capital_yuan", sa.BigInteger(), nullable=True),
        sa.Column("legal_rep", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("credit_code", name=op.f("pk_registry_enterprise")),
    )
    op.create_table(
        "registry_icp",
        sa.Column("icp_number", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("holder_credit_code", sa.String(length=18), nullable=True),
        sa.Column("holder_kind", sa.String(length=16), nullable=False),
        sa.Column("approved_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("icp_number", "domain", name=op.f("pk_registry_icp")),
    )
    op.create_index(op.f("ix_registry_icp_domain"), "registry_icp", ["domain"])


def downgrade() -> None:
    op.drop_index(op.f("ix_registry_icp_domain"), table_name="registry_icp")
    op.drop_table("registry_icp")
    op.drop_table("registry_enterprise")
    op.drop_table("registry_extract")
    op.drop_table("onboarding_history")
    op.drop_index(op.f("ix_onboarding_status_state"), table_name="onboarding_status")
    op.drop_index(op.f("ix_onboarding_status_merchant"), table_name="onboarding_status")
    op.drop_table("onboarding_status")
    op.drop_index(op.f("ix_onboarding_document_sha256"), table_name="onboarding_document")
    for table in (
        "onboarding_amendment",
        "onboarding_question",
        "onboarding_check",
        "onboarding_document",
        "onboarding_owner",
    ):
        op.drop_index(op.f(f"ix_{table}_application_id"), table_name=table)
        op.drop_table(table)
    op.drop_table("onboarding_blob")
    for index in (
        "ix_onboarding_application_bank_account_lookup",
        "ix_onboarding_application_credit_code",
        "ix_onboarding_application_merchant",
    ):
        op.drop_index(op.f(index), table_name="onboarding_application")
    op.drop_table("onboarding_application")
    op.drop_table("onboarding_officer")
