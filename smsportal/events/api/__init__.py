"""The /v1 API of webhooks: endpoints, the callback secret, deliveries."""
