"""Environments: start, health-check, reset and stop what a run needs (broker, proxy, netns)."""
