"""Models of compliance; this app's issue has not come yet."""
