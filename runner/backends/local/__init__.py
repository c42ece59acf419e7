"""The local backend: a step as a guarded process group on this machine, with its GPU and
memory-limit helpers."""
