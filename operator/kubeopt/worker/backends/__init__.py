"""Backends behind one protocol, selected by name through the registry."""
