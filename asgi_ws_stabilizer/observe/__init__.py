"""Events and their sinks: the log, and the counters behind ``hub.stats()``."""
