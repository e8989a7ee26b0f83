"""``cardtrace analyze``: run the account-to-account detectors on a transfer list. Thin."""

from __future__ import annotations

import click


@click.command("analyze")
@click.option(
    "--edges",
    "edges",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV with a header naming source, target, amount, timestamp (ISO 8601).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for flagged_accounts.csv, flagged_transfers.csv and summary.json.",
)
@click.option(
    "--seeds",
    type=click.Path(exists=True, dir_okay=False),
    help="Known-bad accounts, one per line, to propagate risk from.",
)
def analyze(edges: str, out_dir: str, seeds: str | None) -> None:
    """Find laundering patterns in a transfer list (docs/ANALYSIS.md).

    Nothing is written unless the whole file reads cleanly; a bad row is reported with
    its line number.
    """
    from provenance.analysis import analyze_transfers, read_transfers, write_report

    with open(edges, encoding="utf-8-sig", newline="") as f:
        table = read_transfers(f)
    known: list[str] = []
    if seeds:
        with open(seeds, encoding="utf-8") as f:
            known = [line.strip() for line in f if line.strip()]
    report = analyze_transfers(table, seeds=known)
    written = write_report(report, out_dir)
    accounts = {a for a, _ in report.flagged_accounts()}
    rows = {r for r, _ in report.flagged_transfers()}
    click.echo(
        f"{len(table):,} transfers, {table.n_accounts:,} accounts: {len(report.findings):,} "
        f"findings, {len(accounts):,} accounts and {len(rows):,} transfers flagged -> {written}"
    )
