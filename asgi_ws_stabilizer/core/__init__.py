"""The sans-I/O core: the code that decides, with no asyncio and ``now`` passed in."""
