"""Models of numbers; this app's issue has not come yet."""
