"""Models of messaging; this app's issue has not come yet."""
