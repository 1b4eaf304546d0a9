"""Reference workloads and the client protocol (see protocol.py)."""
