"""The asyncio layer: it moves messages and runs timers (one connection, its gate, reader and inbox;
the heartbeat timer, the lag monitor, signals)."""
