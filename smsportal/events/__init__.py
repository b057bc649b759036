"""The signed event outbox (Standard Webhooks), below every feature app: endpoints, deliveries, signing, retries.

Any app emits through `smsportal.events.services.event_emit`/`events_emit` with a payload it builds
itself; the event types it emits are registered in its AppConfig.ready (smsportal/events/registry.py).
"""
