"""A module that fails on import, for the ``asyncqueue worker`` error tests."""

raise RuntimeError("this module is broken on purpose")
