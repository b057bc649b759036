"""Portal pages of the numbers app."""
