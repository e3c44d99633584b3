# ruff: noqa: S608  (SQL built from this file's constants; values are bound)
"""Preprocessing of real tables: text categories, NULLs, skewed numbers, text labels.

Everything runs on ``houses``, a table built here like a real one: text columns with
NULLs, a skewed numeric column with NULLs, integers, booleans, an ordered text grade,
a numeric label and a text label. Training uses ``test_sampling => 'last'``, so the
training rows are the first 1,500 ids, and statistics can be checked against them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import psycopg
import pytest

N = 2000
TRAINING = "id <= 1500"  # test_size 0.25, test_sampling 'last'
FEATURES = ("city", "district", "size", "rooms", "garden", "grade")
ROW = "ROW('paris'::text, 'd3'::text, 80.0::real, 3, true, 'high'::text)"


@pytest.fixture(scope="module")
def houses(conn: psycopg.Connection) -> str:
    rng = np.random.default_rng(7)
    city = rng.choice(
        ["paris", "lyon", "nice", "lille", "brest"], N, p=[0.35, 0.25, 0.2, 0.15, 0.05]
    ).astype(object)
    city[rng.random(N) < 0.06] = None
    district = np.array([f"d{i}" for i in rng.integers(0, 12, N)], dtype=object)
    size = rng.lognormal(4, 0.6, N)  # skewed
    rooms = np.clip((size / 25 + rng.normal(0, 0.7, N)).round(), 1, 9).astype(int)
    garden = rng.random(N) < 0.3
    grade = rng.choice(["low", "mid", "high"], N).astype(object)
    grade[rng.random(N) < 0.05] = None
    effect = {"paris": 3.0, "lyon": 1.5, "nice": 1.8, "lille": 0.8, "brest": 0.3, None: 1.0}
    bonus = {"low": -0.5, "mid": 0.0, "high": 0.7, None: 0.0}
    price = (
        np.array([effect[c] for c in city]) * size * 3
        + 40 * garden
        + np.array([bonus[g] for g in grade]) * 60
        + rng.normal(0, 25, N)
    )
    observed = size.round(1).astype(object)
    observed[rng.random(N) < 0.08] = None
    band = np.where(
        price < np.quantile(price, 0.33),
        "cheap",
        np.where(price < np.quantile(price, 0.66), "fair", "expensive"),
    )
    conn.execute(
        "CREATE TABLE houses (id int PRIMARY KEY, city text, district text, size real,"
        " rooms int, garden boolean, grade text, price float8, band text)"
    )
    with conn.cursor().copy("COPY houses FROM STDIN") as copy:
        for i in range(N):
            copy.write_row(
                (
                    i + 1,
                    city[i],
                    district[i],
                    observed[i],
                    int(rooms[i]),
                    bool(garden[i]),
                    grade[i],
                    float(price[i]),
                    str(band[i]),
                )
            )
    # The smallest size of all is in the test rows: an imputed "min" must not see it.
    conn.execute("UPDATE houses SET size = 1 WHERE id = 2000")
    conn.execute(
        "CREATE VIEW house_prices AS SELECT city, district, size, rooms, garden,"
        " grade, price FROM houses ORDER BY id"
    )
    conn.execute(
        "CREATE VIEW house_bands AS SELECT city, district, size, rooms, garden, grade,"
        " band FROM houses ORDER BY id"
    )
    return "houses"


def _train(
    conn: psycopg.Connection,
    project: str,
    preprocess: dict,
    algorithm: str = "linear",
    relation: str = "house_prices",
    label: str = "price",
    task: str = "regression",
    **extra: str,
) -> dict:
    args = "".join(f", {k} => %({k})s" for k in extra)  # names of this file's callers
    query = (
        "SELECT * FROM pyml.train(%(p)s, %(task)s, %(rel)s, %(label)s, %(alg)s,"
        f" test_sampling => 'last', preprocess => %(pre)s{args})"
    )
    conn.execute(
        query,
        {
            "p": project,
            "task": task,
            "rel": relation,
            "label": label,
            "alg": algorithm,
            "pre": json.dumps(preprocess),
            **extra,
        },
    )
    (row,) = conn.execute(
        "SELECT m.id, m.metrics, m.preprocess, m.feature_names, m.hyperparams"
        " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
        (project,),
    ).fetchall()
    return dict(
        zip(("id", "metrics", "preprocess", "feature_names", "hyperparams"), row, strict=True)
    )


def _predict(conn: psycopg.Connection, project: str, row: str, function: str = "predict") -> float:
    return conn.execute(f"SELECT pyml.{function}(%s, {row})", (project,)).fetchone()[0]


def _row(
    city: str | None = "'paris'", size: str = "80.0", rooms: str = "3", grade: str = "'high'"
) -> str:
    return f"ROW({city}::text, 'd3'::text, {size}::real, {rooms}::int, true, {grade}::text)"


# ---------------------------------------------------------------------------
# The PostgresML preprocessing workflow
# ---------------------------------------------------------------------------


def test_postgresml_workflow_target_encoding_and_standard_scaling(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    """lightgbm regression on target-encoded text and standard-scaled numbers, predicted
    with a ROW, as in PostgresML's preprocessing guide."""
    model = _train(
        conn,
        project,
        {
            "city": {"encode": "target"},
            "district": {"encode": "target"},
            "grade": {"encode": "target"},
            "size": {"impute": "mean", "scale": "standard"},
            "rooms": {"scale": "standard"},
        },
        algorithm="lightgbm",
    )
    assert model["metrics"]["r2"] > 0.8  # the city effect is learnt from text
    assert model["feature_names"] == list(FEATURES)
    used = model["preprocess"]
    assert {k: used["city"][k] for k in ("encode", "impute", "scale")} == {
        "encode": "target",
        "impute": None,
        "scale": "preserve",
    }
    assert used["city"]["fitted"]["categories"] == 6  # five cities and NULL
    assert used["garden"] == {"impute": "error", "scale": "preserve"}  # nothing fitted
    # What was fitted, from the training rows only (the first 1,500 ids):
    mean, std = conn.execute(
        f"SELECT avg(size::float8), stddev_pop(coalesce(size::float8,"
        f" (SELECT avg(size::float8) FROM houses WHERE {TRAINING})))"
        f" FROM houses WHERE {TRAINING}"
    ).fetchone()
    assert used["size"]["fitted"]["fill"] == pytest.approx(mean, rel=1e-9)
    assert used["size"]["fitted"]["mean"] == pytest.approx(mean, rel=1e-9)
    assert used["size"]["fitted"]["std"] == pytest.approx(std, rel=1e-6)
    paris, brest = _predict(conn, project, ROW), _predict(conn, project, _row("'brest'"))
    assert paris > brest + 150  # paris costs three times more per square metre
    # A table row (label included, matched by name), ROW and predict_into agree.
    by_row, by_table = conn.execute(
        "SELECT pyml.predict(%s, ROW(h.city, h.district, h.size, h.rooms, h.garden, h.grade)),"
        " pyml.predict(%s, h) FROM houses h WHERE id = 7",
        (project, project),
    ).fetchone()
    assert by_row == by_table
    conn.execute("SELECT pyml.predict_into(%s, 'houses', 'house_scores_wf')", (project,))
    (differ,) = conn.execute(
        "SELECT count(*) FROM houses h JOIN house_scores_wf s USING (id)"
        " WHERE s.prediction IS DISTINCT FROM pyml.predict(%s, h)",
        (project,),
    ).fetchone()
    assert differ == 0


# ---------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("encode", ["native", "target", "one_hot", "ordinal"])
def test_every_encoding_trains_and_takes_unseen_categories(
    conn: psycopg.Connection, houses: str, project: str, encode: str
) -> None:
    city, grade = (
        (
            {"ordinal": ["brest", "lille", "lyon", "nice", "paris"]},
            {"ordinal": ["low", "mid", "high"]},
        )
        if encode == "ordinal"
        else (encode, encode)
    )
    model = _train(
        conn,
        project,
        {"grade": {"encode": grade}, "city": {"encode": city}, "size": {"impute": "median"}},
        algorithm="lightgbm",
    )
    assert model["metrics"]["r2"] > 0.6
    unseen = _predict(conn, project, _row("'atlantis'", grade="'legendary'"))
    assert math.isfinite(unseen)  # unknown, not an error
    assert math.isfinite(_predict(conn, project, _row("NULL", grade="NULL")))


def test_null_text_is_a_category_of_its_own(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    conn.execute(
        "CREATE TABLE nulls_matter AS SELECT CASE i % 3 WHEN 0 THEN 'a' WHEN 1 THEN"
        " 'b' END AS kind, CASE i % 3 WHEN 0 THEN 0.0 WHEN 1 THEN 50.0 ELSE 100.0"
        " END AS y FROM generate_series(1, 300) i"
    )
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'nulls_matter', 'y', 'random_forest')",
        (project,),
    )
    values = [_predict(conn, project, f"ROW({v}::text)") for v in ("'a'", "'b'", "NULL")]
    assert values == pytest.approx([0.0, 50.0, 100.0], abs=1e-6)


def test_ordinal_order_is_the_one_given(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    """A linear model on an ordinal column: each step up the order adds the same amount."""
    model = _train(
        conn,
        project,
        {
            "grade": {"encode": {"ordinal": ["low", "mid", "high"]}, "impute": "mode"},
            "size": {"impute": "mean"},
        },
    )
    low, mid, high = (_predict(conn, project, _row(grade=f"'{g}'")) for g in ("low", "mid", "high"))
    assert mid - low == pytest.approx(high - mid, rel=1e-4)
    assert high > low  # high grades cost more
    assert model["preprocess"]["grade"]["encode"] == {"ordinal": ["low", "mid", "high"]}


def test_one_hot_explanations_sum_back_into_their_column(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    _train(
        conn,
        project,
        {
            "city": {"encode": "one_hot"},
            "district": {"encode": "one_hot"},
            "grade": {"encode": "one_hot"},
            "size": {"impute": "mean"},
        },
    )
    rows = conn.execute(
        f"SELECT feature, contribution FROM pyml.explain(%s, {ROW})", (project,)
    ).fetchall()
    assert [f for f, _ in rows] == [*FEATURES, "__bias__"]
    assert sum(c for _, c in rows) == pytest.approx(_predict(conn, project, ROW), rel=1e-5)
    importance: dict[str, float] = dict(
        conn.execute("SELECT * FROM pyml.feature_importance(%s)", (project,)).fetchall()
    )
    assert list(importance) == list(FEATURES)
    assert sum(importance.values()) == pytest.approx(1.0, rel=1e-5)


def test_text_labels_with_preprocessing(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    model = _train(
        conn,
        project,
        {
            "city": {"encode": "one_hot"},
            "size": {"impute": "mean", "scale": "robust"},
            "rooms": {"scale": "min_max"},
        },
        algorithm="random_forest",
        relation="house_bands",
        label="band",
        task="classification",
    )
    assert model["metrics"]["f1"] > 0.7
    label, proba = conn.execute(
        f"SELECT pyml.predict_label(%s, {ROW}), pyml.predict_proba(%s, {ROW})", (project, project)
    ).fetchone()
    assert label == "expensive"
    assert sum(proba) == pytest.approx(1.0, rel=1e-5)
    rows = conn.execute(f"SELECT * FROM pyml.explain(%s, {ROW})", (project,)).fetchall()
    assert [f for f, _ in rows] == [*FEATURES, "__bias__"]


# ---------------------------------------------------------------------------
# Imputation: statistics of the training rows only
# ---------------------------------------------------------------------------


FILL = {
    "mean": "avg(size::float8)",
    "median": "percentile_cont(0.5) WITHIN GROUP (ORDER BY size::float8)",
    "mode": "mode() WITHIN GROUP (ORDER BY size::float8)",
    "min": "min(size::float8)",
    "max": "max(size::float8)",
    "zero": "0",
}


@pytest.mark.parametrize("impute", sorted(FILL))
def test_imputation_fills_with_training_statistics(
    conn: psycopg.Connection, houses: str, project: str, impute: str
) -> None:
    _train(conn, project, {"size": {"impute": impute}})
    (fill,) = conn.execute(f"SELECT {FILL[impute]} FROM houses WHERE {TRAINING}").fetchone()
    (everything,) = conn.execute(f"SELECT {FILL[impute]} FROM houses").fetchone()
    if impute == "min":
        assert everything == 1 and fill > 1  # the test rows' minimum is not used
    imputed = _predict(conn, project, _row(size="NULL"))
    assert imputed == pytest.approx(
        _predict(conn, project, _row(size=repr(float(fill)))), rel=1e-5, abs=1e-3
    )
    assert imputed != pytest.approx(_predict(conn, project, _row(size="500")), rel=1e-3)


def test_null_without_an_impute_rule_is_22004(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    with pytest.raises(psycopg.errors.NullValueNotAllowed) as info:
        _train(conn, project, {})
    assert '"size"' in info.value.diag.message_primary
    assert "impute" in info.value.diag.message_hint
    _train(conn, project, {"size": {"impute": "mean"}})
    with pytest.raises(psycopg.errors.NullValueNotAllowed, match='"rooms"'):
        _predict(conn, project, _row(rooms="NULL"))


def test_arrays_are_imputed_too_unless_text_is_needed(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    conn.execute("CREATE TABLE numbers_only AS SELECT size, rooms, price FROM houses")
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'numbers_only', 'price',"
        ' preprocess => \'{"size": {"impute": "median", "scale": "standard"}}\')',
        (project,),
    )
    with_null, batch = conn.execute(
        "SELECT pyml.predict(%s, ARRAY[NULL, 3]::real[]),"
        " (SELECT array_agg(p) FROM pyml.predict_batch(%s, ARRAY[NULL, 3, 50, 2]::real[]) p)",
        (project, project),
    ).fetchone()
    assert batch[0] == pytest.approx(with_null)
    _train(conn, project + "_text", {"size": {"impute": "mean"}})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="text"):
        conn.execute("SELECT pyml.predict(%s, ARRAY[1, 2, 3, 4, 5, 6])", (project + "_text",))


# ---------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "impute", "zero_at"),
    [
        ("standard", "mean", "avg(size::float8)"),
        ("min_max", "mean", "min(size::float8)"),
        ("robust", "median", "percentile_cont(0.5) WITHIN GROUP (ORDER BY size::float8)"),
        ("max_abs", "mean", "0"),
    ],
)
def test_scaling_centres_on_training_statistics(
    conn: psycopg.Connection, houses: str, project: str, scale: str, impute: str, zero_at: str
) -> None:
    """A linear model's contribution of a scaled column is zero where the scaler maps it to
    zero: the training mean (standard), minimum (min_max), median (robust). (The imputation
    chosen leaves that statistic as it is.)"""
    _train(conn, project, {"size": {"impute": impute, "scale": scale}})
    (at,) = conn.execute(
        f"SELECT {zero_at} FROM houses WHERE {TRAINING}  AND size IS NOT NULL"
    ).fetchone()
    contributions: dict[str, float] = dict(
        conn.execute(
            f"SELECT * FROM pyml.explain(%s, {_row(size=repr(float(at)))})", (project,)
        ).fetchall()
    )
    assert contributions["size"] == pytest.approx(0.0, abs=1e-2)
    elsewhere: dict[str, float] = dict(
        conn.execute(f"SELECT * FROM pyml.explain(%s, {_row(size='300')})", (project,)).fetchall()
    )
    assert abs(elsewhere["size"]) > 1


def test_scaling_changes_a_distance_based_model(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    row = _row(size="120", rooms="2")
    plain = _train(conn, project + "_plain", {"size": {"impute": "mean"}}, algorithm="knn")
    scaled = _train(
        conn,
        project,
        {"size": {"impute": "mean", "scale": "standard"}, "rooms": {"scale": "standard"}},
        algorithm="knn",
    )
    assert plain["id"] != scaled["id"]
    assert _predict(conn, project, row) != _predict(conn, project + "_plain", row)


# ---------------------------------------------------------------------------
# Search, snapshots, clustering, streams
# ---------------------------------------------------------------------------


def test_search_refits_preprocessing_per_fold(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    model = _train(
        conn,
        project,
        {"city": {"encode": "target"}, "size": {"impute": "mean"}},
        algorithm="lightgbm",
        search="random",
        search_params=json.dumps({"n_estimators": [20, 50], "num_leaves": [7, 15]}),
        search_args=json.dumps({"n_iter": 3, "cv": 3}),
    )
    results = model["metrics"]["search_results"]
    assert len(results) == 3
    assert all(set(r["params"]) <= {"n_estimators", "num_leaves"} for r in results)
    best = max(results, key=lambda r: r["mean_test_score"])["params"]
    assert {k: model["hyperparams"][k] for k in best} == best


def test_snapshot_keeps_its_preprocessing(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    spec = {"size": {"impute": "median"}, "city": {"encode": "one_hot"}}
    (relation,) = conn.execute(
        "SELECT relation FROM pyml.snapshot('house_prices', 'price', preprocess => %s)",
        (json.dumps(spec),),
    ).fetchone()
    (stored,) = conn.execute(
        "SELECT preprocess FROM pyml.snapshots WHERE relation_name = %s", (relation,)
    ).fetchone()
    assert stored == spec
    _train(conn, project, spec)  # the project's snapshot keeps the rules...
    conn.execute("SELECT * FROM pyml.train(%s, algorithm => 'ridge')", (project,))
    (used,) = conn.execute(
        "SELECT m.preprocess FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
        (project,),
    ).fetchone()
    assert used["city"]["encode"] == "one_hot"  # ...for the next training without a relation
    assert used["size"]["impute"] == "median"


def test_clustering_text_and_scaled_numbers(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'clustering', 'house_bands', algorithm => 'kmeans',"
        " hyperparams => '{\"n_clusters\": 3}', preprocess => %s)",
        (
            project,
            json.dumps(
                {
                    "size": {"impute": "mean", "scale": "standard"},
                    "rooms": {"scale": "standard"},
                    "city": {"encode": "one_hot"},
                    "band": {"encode": "one_hot"},
                }
            ),
        ),
    )
    (clusters,) = conn.execute(
        "SELECT count(DISTINCT pyml.predict(%s, h)) FROM house_bands h", (project,)
    ).fetchone()
    assert clusters == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streams_impute_like_predict(
    conn: psycopg.Connection, houses: str, project: str, mode: str
) -> None:
    table = f"arrivals_{mode}"
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, size real, rooms int)")
    conn.execute("CREATE TABLE IF NOT EXISTS sized AS SELECT size, rooms, price FROM houses")
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'sized', 'price', preprocess =>"
        ' \'{"size": {"impute": "median", "scale": "standard"}}\')',
        (project,),
    )
    conn.execute("SELECT pyml.stream(%s, %s, mode => %s)", (project, table, mode))
    conn.execute(f"INSERT INTO {table} VALUES (1, NULL, 3)")  # one row: the online path
    conn.execute(
        f"INSERT INTO {table} SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE i END,"
        " 1 + i % 5 FROM generate_series(2, 201) i"
    )  # a large statement: chunks
    if mode == "async":
        conn.execute("CALL pyml.stream_work()")
    (wrong, scored) = conn.execute(
        "SELECT count(*) FILTER (WHERE e.prediction IS DISTINCT FROM"
        "  pyml.predict(%s, ARRAY[t.size, t.rooms]::real[])), count(*)"
        f" FROM pyml.stream_events e JOIN {table} t ON t.id::text = e.key"
        " WHERE e.stream_id = (SELECT stream_id FROM pyml.streams WHERE project = %s)",
        (project, project),
    ).fetchone()
    assert (wrong, scored) == (0, 201)
    with pytest.raises(psycopg.errors.NullValueNotAllowed):  # rooms has no impute rule
        conn.execute(f"INSERT INTO {table} VALUES (500, 1, NULL)")
        if mode == "async":
            conn.execute("CALL pyml.stream_work()")
            (error,) = conn.execute(
                "SELECT error FROM pyml.stream_events WHERE key = '500' AND stream_id ="
                " (SELECT stream_id FROM pyml.streams WHERE project = %s)",
                (project,),
            ).fetchone()
            assert "rooms" in error
            raise psycopg.errors.NullValueNotAllowed(error)


def test_streams_refuse_category_models(
    conn: psycopg.Connection, houses: str, project: str
) -> None:
    _train(conn, project, {"size": {"impute": "mean"}})
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="categories"):
        conn.execute("SELECT pyml.stream(%s, 'houses')", (project,))


# ---------------------------------------------------------------------------
# Bad rules
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"nope": {"impute": "mean"}}, psycopg.errors.UndefinedColumn),
        ({"price": {"scale": "standard"}}, psycopg.errors.InvalidParameterValue),
        ({"size": {"impute": "mean", "scal": "standard"}}, psycopg.errors.InvalidParameterValue),
        ({"size": {"impute": "average"}}, psycopg.errors.InvalidParameterValue),
        ({"size": {"impute": "mean", "scale": "log"}}, psycopg.errors.InvalidParameterValue),
        ({"city": {"encode": "hash"}}, psycopg.errors.InvalidParameterValue),
        ({"city": {"impute": "mean"}}, psycopg.errors.InvalidParameterValue),
        ([1, 2], psycopg.errors.InvalidParameterValue),
    ],
)
def test_bad_rules_are_refused_before_training(
    conn: psycopg.Connection, houses: str, project: str, spec: object, error: type
) -> None:
    with pytest.raises(error):
        _train(conn, project, spec)  # type: ignore[arg-type]
    (left,) = conn.execute(
        "SELECT count(*) FROM pyml.projects WHERE name = %s", (project,)
    ).fetchone()
    assert left == 0  # nothing half-written


def test_other_types_need_an_encoding(conn: psycopg.Connection, houses: str, project: str) -> None:
    conn.execute(
        "CREATE TABLE dated AS SELECT current_date - (i % 7) AS day, i::float8 AS y"
        " FROM generate_series(1, 100) i"
    )
    with pytest.raises(psycopg.errors.DataException, match="date"):
        conn.execute("SELECT * FROM pyml.train(%s, 'regression', 'dated', 'y')", (project,))
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'dated', 'y',"
        ' preprocess => \'{"day": {"encode": "one_hot"}}\')',
        (project,),
    )
