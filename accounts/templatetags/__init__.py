"""Template tags and filters of the accounts app."""
