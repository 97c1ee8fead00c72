"""The Redis adapters: the only modules of notify that import redis."""
