"""Deletes the scan's guard held back (too many of one tenant's documents gone at once), and the
operator's confirmations of them: manifest metadata the scan writes and `rag deletes`, the API
and the status read. Apart from the scan, so that reading them loads nothing of ingestion.
"""

from __future__ import annotations

from core.manifest import Manifest

HELD_DELETES = "held_deletes"  # manifest meta: {tenant: {"doc_ids", "documents", "since"}}
CONFIRMED_DELETES = "confirmed_deletes"  # manifest meta: {tenant: [doc_id, ...]}


def confirm_held_deletes(manifest: Manifest, tenant: str) -> int:
    """An operator's yes to the deletes held for `tenant`: the next scan carries them out.

    Returns how many were confirmed. Only the deletes held now are confirmed; any document that
    leaves the bucket later is judged afresh.
    """
    held = (manifest.get_meta(HELD_DELETES) or {}).get(tenant, {}).get("doc_ids", [])

    def add(confirmed: dict | None) -> dict:
        confirmed = dict(confirmed or {})
        confirmed[tenant] = sorted({*confirmed.get(tenant, ()), *held})
        return confirmed

    if held:
        manifest.update_meta(CONFIRMED_DELETES, add)
    return len(held)


def held_deletes(manifest: Manifest, tenant: str | None = None) -> dict[str, int]:
    """Deletes the last scan held back, per tenant (only `tenant`'s when given)."""
    held = manifest.get_meta(HELD_DELETES) or {}
    return {t: len(h["doc_ids"]) for t, h in held.items() if tenant is None or t == tenant}
