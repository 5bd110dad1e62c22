"""Boards for people: Grafana provisioning generated from code, and the built-in huddle page."""
