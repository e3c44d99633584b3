"""Code that runs inside PostgreSQL, reached from the extension's SQL functions.

``_sqlapi`` is the boundary: the SQL stubs call one function of it each, passing ``plpy`` and
``GD``; it checks arguments, calls the domain modules and reports errors with their SQLSTATE.
``session`` is what one database session keeps in ``GD``. ``store`` is the only module that
issues SQL (through ``_db``, bound parameters only). The domain modules (``training``,
``fitting``, ``search``, ``deployment``, ``batch``, ``streaming``, ``monitoring``,
``privileges``) decide; they take a ``Db`` and never import ``plpy`` or psycopg.
"""
