"""Template tags of the messaging app."""
