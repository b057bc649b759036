"""Models of compliance: for now the keyword events (opt-out, opt-in, help) of inbound messages."""
from django.db import models

from smsportal.tenancy import TenantScopedManager


class KeywordEvent(models.Model):
    """An inbound STOP/START/HELP keyword from `sender` to the tenant's `number`; append-only,
    written only by compliance.services.keyword_record."""

    class Kind(models.TextChoices):
        OPT_OUT = "opt_out", "Opt-out"
        OPT_IN = "opt_in", "Opt-in"
        HELP = "help", "Help"

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    number = models.CharField(max_length=20, help_text="The tenant's number (E.164).")
    sender = models.CharField(max_length=20, help_text="Who sent the keyword (E.164).")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["tenant", "sender", "created_at"])]

    def __str__(self) -> str:
        return f"{self.sender} {self.kind}"
