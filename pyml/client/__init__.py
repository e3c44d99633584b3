"""Code that runs in a user's process and reaches the database through psycopg.

``cli`` is the ``pyml`` command; ``cluster`` the embedded local server behind ``pyml up``;
``consumer`` reads a stream's predictions as they arrive; ``report`` writes a project's
monitoring history for people; ``demo`` is ``make demo``. Nothing here imports
``pyml.server``: what both sides need lives in ``pyml.core``.
"""
