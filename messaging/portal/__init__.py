"""Portal pages for messaging: the message log, sending test messages, templates."""
