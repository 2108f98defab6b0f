"""Sync vs Async, Live: the lab the course notebooks import."""
