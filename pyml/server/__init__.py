"""Code that runs inside PostgreSQL, reached from the extension's SQL functions.

``_sqlapi`` is the boundary: the SQL stubs call one function of it each, passing ``plpy`` and
``GD``; it checks arguments, calls the domain modules and reports errors with their SQLSTATE.
``session`` is what one database session keeps in ``GD``. ``store`` is the only module that
issues SQL (through ``_db``, bound parameters only). The domain modules (``training``,
``fitting``, ``search``, ``deployment``, ``batch``, ``streaming``, ``monitoring``,
``privileges``) decide; they take a ``Db`` and never import ``plpy`` or psycopg.
"""

import os

# numpy asks Linux for transparent huge pages (madvise) for its large arrays. Where THP
# defrag is "madvise" (Debian's default), a fault in such an array compacts memory on the
# spot when no huge page is free, and in a server whose memory the page cache fragments
# that is often: building an 80 MB input matrix took 0.17-0.25 s instead of 0.08 s in
# backends that had trained before (bench/RESULTS.md, issue 19). Off in the backend unless
# the server's environment says otherwise; numpy reads it once, when first imported.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
