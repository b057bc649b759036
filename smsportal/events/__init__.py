"""Signed webhooks (Standard Webhooks) for message events: endpoints, deliveries, retries."""
