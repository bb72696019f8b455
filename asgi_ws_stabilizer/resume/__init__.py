"""Resumption: tokens, sessions and their replay buffers, binding a socket to a session."""
