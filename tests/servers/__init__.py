"""Test helpers: a tiny net, local servers (olah mirror, Hub upload endpoints)."""
