"""Golden sets on both state backends: a tenant's items, written and reviewed through any host,
never another tenant's."""

from __future__ import annotations

from core.settings import Settings
from eval.golden import GoldenItem
from eval.golden_store import GoldenStore


def _item(item_id: str, review: str = "approved") -> GoldenItem:
    return GoldenItem(id=item_id, question=f"what is {item_id}?", review=review)  # type: ignore[arg-type]


def test_items_are_put_reviewed_and_deleted_per_tenant(state_settings: Settings) -> None:
    store = GoldenStore.open(state_settings)
    try:
        assert store.put("acme", [_item("b"), _item("a", "pending")]) == 2
        store.put("globex", [_item("a")])
        assert [i.id for i in store.items("acme")] == ["a", "b"]
        assert [i.id for i in store.items("acme", "pending")] == ["a"]
        assert store.tenants() == ["acme", "globex"]
        store.put("acme", [_item("a", "approved")])  # the same id again: replaced
        assert [i.review for i in store.items("acme")] == ["approved", "approved"]
        edited = store.update("acme", "b", {"reference": "bees"})
        assert edited is not None and store.get("acme", "b") == edited
        assert store.update("acme", "zz", {"reference": "none"}) is None
        assert store.delete("acme", ["a", "b", "zz"]) == 2
        assert store.items("acme") == [] and store.get("globex", "a") is not None
        assert store.tenants() == ["globex"]
    finally:
        store.close()
