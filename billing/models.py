"""Models of billing; this app's issue has not come yet."""
