import psycopg, pytest, json

def test_probe(conn, connect, admin_url):
    s = connect()
    s.execute("SET client_min_messages = notice")
    notes = []
    s.add_notice_handler(lambda d: notes.append(d.message_primary))
    r = s.execute("SELECT * FROM pyml.train('p1', 'classification', 'pyml.iris', 'target', runtime => 'rust')").fetchall()
    print(r, notes)
    for q in ["SELECT * FROM pyml.train('nope')",
              "SELECT * FROM pyml.train('p2', 'regression', 'pyml.nope', 'target')",
              "SELECT * FROM pyml.train('p2', 'regression', 'pyml.iris; DROP TABLE pyml.models', 'target')",
              "SELECT * FROM pyml.train('p2', 'classification', 'pyml.iris', 'target', algorithm => 'lasso')",
              "SELECT * FROM pyml.predict('p1', ARRAY[1,2,3]::real[])",
              "SELECT * FROM pyml.load_dataset('iris')",
              "SELECT * FROM pyml.train('p1', 'classification', 'iris', 'target')",
              ]:
        try:
            s.execute(q)
        except psycopg.Error as e:
            print(q, e.diag.sqlstate, repr(e.diag.message_primary), e.diag.message_detail, e.diag.message_hint, repr(e.diag.context))
    s.execute("SET search_path = pyml, public")
    try:
        s.execute("SELECT * FROM pyml.train('p1', 'classification', 'iris', 'target')")
        print("search_path ok")
    except psycopg.Error as e:
        print("search_path", e.diag.sqlstate, e.diag.message_primary)
    print(conn.execute("SELECT tableowner FROM pg_tables WHERE tablename='iris'").fetchall())
    print(conn.execute("SELECT current_setting('pyml.venv')").fetchall())
    print(conn.execute("SELECT hyperparams, metrics, classes, lineage, feature_names, runtime FROM pyml.models").fetchall())
    print(conn.execute("SELECT columns FROM pyml.snapshots").fetchall()[0][0][:2])
    assert 0
