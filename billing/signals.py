"""Cache invalidation only (STYLE.md): a price saved or deleted in this process clears its price cache."""
from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from billing import rating
from billing.models import Price


@receiver([post_save, post_delete], sender=Price, dispatch_uid="billing.price_cache_clear")
def price_changed(**kwargs) -> None:
    rating.price_cache_clear()
