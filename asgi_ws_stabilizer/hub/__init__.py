"""The hub: the public API (``Hub``, ``ConnectionHandle``) and the services behind it."""
