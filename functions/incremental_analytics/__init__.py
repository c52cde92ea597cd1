"""incremental-analytics: per-user counters and rules over behavioural event streams, exactly once."""

__version__ = "0.1.0"
