\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Preprocessing (the preprocess argument of train and snapshot): per column, encode text
-- as categories, impute NULLs, scale numbers. Statistics come from the training rows
-- only (test_sampling 'last': ids 1 to 450 of 600), are kept with the model and are
-- re-applied at prediction.
--

-- houses: text with NULLs (city, grade), a skewed size with NULLs, integers, booleans,
-- a numeric price and a text price band, all made from the row number
CREATE TABLE houses AS
SELECT i AS id, c.city, 'd' || (i * 5 % 12) AS district, s.size,
       1 + (coalesce(s.size, 80) / 30)::int + i % 2 AS rooms, i % 3 = 0 AS garden, g.grade,
       (CASE c.city WHEN 'paris' THEN 3.0 WHEN 'lyon' THEN 1.5 WHEN 'nice' THEN 1.8
                    WHEN 'lille' THEN 0.8 WHEN 'brest' THEN 0.3 ELSE 1.0 END * coalesce(s.size, 80) * 3
        + CASE WHEN i % 3 = 0 THEN 40 ELSE 0 END
        + CASE g.grade WHEN 'low' THEN -30 WHEN 'high' THEN 40 ELSE 0 END
        + i * 7919 % 51 - 25)::float8 AS price
FROM generate_series(1, 600) i,
LATERAL (SELECT CASE WHEN i % 17 = 0 THEN NULL
                     ELSE (ARRAY['paris', 'paris', 'paris', 'lyon', 'lyon', 'nice', 'nice', 'lille',
                                 'lille', 'brest', 'paris'])[1 + i * 7 % 11] END AS city) c,
LATERAL (SELECT CASE WHEN i % 13 = 0 THEN NULL
                     ELSE round((20 + (i * 37 % 100) ^ 1.6 / 8)::numeric, 1)::real END AS size) s,
LATERAL (SELECT CASE WHEN i % 19 = 0 THEN NULL
                     ELSE (ARRAY['low', 'mid', 'high', 'mid', 'low', 'high', 'mid'])[1 + i % 7] END AS grade) g;
-- the smallest size of all is in the test rows: statistics must not see it
UPDATE houses SET size = 1 WHERE id = 600;
CREATE VIEW house_prices AS
SELECT city, district, size, rooms, garden, grade, price FROM houses ORDER BY id;
CREATE VIEW house_bands AS
SELECT city, district, size, rooms, garden, grade,
       CASE WHEN price < 250 THEN 'cheap' WHEN price < 600 THEN 'fair' ELSE 'expensive' END AS band
FROM houses ORDER BY id;

SELECT count(*) AS rows, count(*) - count(city) AS null_cities, count(*) - count(size) AS null_sizes,
       count(*) - count(grade) AS null_grades
FROM houses;

-- NULLs in a feature without an impute rule: 22004, naming the column
SELECT * FROM pyml.train('Houses Plain', 'regression', 'house_prices', 'price', test_sampling => 'last');
\echo :SQLSTATE

--
-- target encoding of text, mean imputation and standard scaling (LightGBM)
--
SELECT project, task, algorithm, deployed
FROM pyml.train('Houses Target', 'regression', 'house_prices', 'price', 'lightgbm',
                hyperparams => '{"n_estimators": 50}', test_sampling => 'last',
                preprocess => '{"city": {"encode": "target"}, "district": {"encode": "target"},
                                "grade": {"encode": "target"},
                                "size": {"impute": "mean", "scale": "standard"},
                                "rooms": {"scale": "standard"}}');
SELECT (m.metrics->>'r2')::float8 > 0.8 AS learnt, m.feature_names
FROM pyml.models m JOIN pyml.trained_models t USING (id)
WHERE t.project = 'Houses Target';
-- the rules as used, per column (text columns are categories; the others are numbers)
SELECT r.key AS feature, r.value->'encode' AS encode, r.value->>'impute' AS impute,
       r.value->>'scale' AS scale
FROM pyml.trained_models t JOIN pyml.models m USING (id), jsonb_each(m.preprocess) r
WHERE t.project = 'Houses Target'
ORDER BY array_position(m.feature_names, r.key);
-- what was fitted: from the training rows only
SELECT round((m.preprocess #>> '{size,fitted,fill}')::numeric, 4) AS fill,
       round((m.preprocess #>> '{size,fitted,mean}')::numeric, 4) AS mean,
       round((m.preprocess #>> '{size,fitted,std}')::numeric, 4) AS std,
       (m.preprocess #>> '{city,fitted,categories}')::int AS city_categories
FROM pyml.trained_models t JOIN pyml.models m USING (id)
WHERE t.project = 'Houses Target';
SELECT round(avg(size)::numeric, 4) AS training_mean, round(stddev_pop(coalesce(size, a.mean))::numeric, 4) AS training_std
FROM houses, (SELECT avg(size::float8) AS mean FROM houses WHERE id <= 450) a
WHERE id <= 450;

-- predicting: a ROW(...) of the training columns (text included), or a table row
SELECT round(pyml.predict('Houses Target', ROW('paris'::text, 'd3'::text, 80.0::real, 3, true, 'high'::text))::numeric) AS paris,
       round(pyml.predict('Houses Target', ROW('brest'::text, 'd3'::text, 80.0::real, 3, true, 'high'::text))::numeric) AS brest;
-- a NULL city is a category of its own; a city never seen is unknown, not an error; a NULL
-- size is imputed
SELECT pyml.predict('Houses Target', ROW(NULL::text, 'd3'::text, 80.0::real, 3, true, 'high'::text)) IS NOT NULL AS null_city,
       pyml.predict('Houses Target', ROW('marseille'::text, 'd3'::text, 80.0::real, 3, true, 'high'::text)) IS NOT NULL AS unseen_city,
       pyml.predict('Houses Target', ROW('paris'::text, 'd3'::text, NULL::real, 3, true, 'high'::text))
           = pyml.predict('Houses Target', ROW('paris'::text, 'd3'::text,
               (SELECT avg(size::float8) FROM houses WHERE id <= 450)::real, 3, true, 'high'::text)) AS null_size_is_the_mean;
-- a table row is matched by column name (its label and other columns are left out)
SELECT count(*) AS rows,
       count(*) FILTER (WHERE pyml.predict('Houses Target', h)
           = pyml.predict('Houses Target', ROW(h.city, h.district, h.size, h.rooms, h.garden, h.grade))) AS same_as_row
FROM houses h;
-- NULL in a column without an impute rule, and an infinite size
SELECT pyml.predict('Houses Target', ROW('paris'::text, 'd3'::text, 80.0::real, NULL::int, true, 'high'::text));
\echo :SQLSTATE
SELECT pyml.predict('Houses Target', ROW('paris'::text, 'd3'::text, 'Infinity'::real, 3, true, 'high'::text));
\echo :SQLSTATE
-- text columns cannot be passed in an array of numbers (the message names the model by
-- id: only the SQLSTATE is shown)
\set VERBOSITY sqlstate
SELECT pyml.predict('Houses Target', ARRAY[1, 2, 80, 3, 1, 3]);
\set VERBOSITY default

--
-- one-hot and ordinal encodings (linear models)
--
SELECT project, task, algorithm, deployed
FROM pyml.train('Houses One Hot', 'regression', 'house_prices', 'price', test_sampling => 'last',
                preprocess => '{"city": {"encode": "one_hot"}, "district": {"encode": "one_hot"},
                                "grade": {"encode": {"ordinal": ["low", "mid", "high"]}, "impute": "mode"},
                                "size": {"impute": "median"}}');
-- an ordinal column: each step up the given order adds the same amount
WITH p AS (
    SELECT g, pyml.predict('Houses One Hot', ROW('lyon'::text, 'd3'::text, 80.0::real, 3, false, g)) AS price
    FROM unnest(ARRAY['low', 'mid', 'high']) g
)
SELECT round(((SELECT price FROM p WHERE g = 'mid') - (SELECT price FROM p WHERE g = 'low'))::numeric, 1) AS low_to_mid,
       round(((SELECT price FROM p WHERE g = 'high') - (SELECT price FROM p WHERE g = 'mid'))::numeric, 1) AS mid_to_high;
-- explanations and importances are per input column (a one-hot column's parts summed)
SELECT feature FROM pyml.explain('Houses One Hot', ROW('lyon'::text, 'd3'::text, 80.0::real, 3, false, 'mid'::text));
SELECT abs(sum(contribution) - pyml.predict('Houses One Hot',
           ROW('lyon'::text, 'd3'::text, 80.0::real, 3, false, 'mid'::text))) < 1e-2 AS sums_to_prediction
FROM pyml.explain('Houses One Hot', ROW('lyon'::text, 'd3'::text, 80.0::real, 3, false, 'mid'::text));
SELECT count(*) AS features, round(sum(importance)::numeric, 4) AS total
FROM pyml.feature_importance('Houses One Hot');

--
-- imputation and scaling statistics, from the training rows only
--
SELECT project, task, algorithm, deployed
FROM pyml.train('Houses Scaled', 'regression', 'house_prices', 'price', test_sampling => 'last',
                preprocess => '{"size": {"impute": "min", "scale": "min_max"}, "rooms": {"scale": "robust"}}');
SELECT round((m.preprocess #>> '{size,fitted,fill}')::numeric, 1) AS size_fill,
       (SELECT min(size) FROM houses WHERE id <= 450) AS training_min,
       (SELECT min(size) FROM houses) AS overall_min
FROM pyml.trained_models t JOIN pyml.models m USING (id)
WHERE t.project = 'Houses Scaled';
-- a linear model's contribution of a scaled column is zero where the scaler maps it to zero
SELECT round(e.contribution::numeric, 4) AS size_at_training_min
FROM pyml.explain('Houses Scaled', ROW('lyon'::text, 'd3'::text,
         (SELECT min(size) FROM houses WHERE id <= 450), 3, false, 'mid'::text)) e
WHERE e.feature = 'size';
SELECT round(e.contribution::numeric, 4) AS rooms_at_training_median
FROM pyml.explain('Houses Scaled', ROW('lyon'::text, 'd3'::text, 80.0::real,
         (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY rooms) FROM houses WHERE id <= 450)::int,
         false, 'mid'::text)) e
WHERE e.feature = 'rooms';

-- arrays of numbers are imputed too (a model without text columns)
CREATE VIEW house_sizes AS SELECT size, rooms, price FROM houses ORDER BY id;
SELECT project, task, algorithm, deployed
FROM pyml.train('Houses Sizes', 'regression', 'house_sizes', 'price', test_sampling => 'last',
                preprocess => '{"size": {"impute": "median", "scale": "standard"}}');
SELECT pyml.predict('Houses Sizes', ARRAY[NULL, 3]::real[])
       = (SELECT p FROM pyml.predict_batch('Houses Sizes', ARRAY[NULL, 3, 50, 2]::real[]) p LIMIT 1)
       AS batch_imputes_alike;

--
-- text labels with preprocessing: classes, predict_label, predict_proba
--
SELECT project, task, algorithm, deployed
FROM pyml.train('Houses Bands', 'classification', 'house_bands', 'band', 'random_forest',
                hyperparams => '{"n_estimators": 20}', test_sampling => 'last',
                preprocess => '{"city": {"encode": "one_hot"}, "size": {"impute": "mean", "scale": "robust"}}');
SELECT m.classes, (m.metrics->>'f1')::float8 > 0.7 AS learnt
FROM pyml.trained_models t JOIN pyml.models m USING (id)
WHERE t.project = 'Houses Bands';
SELECT pyml.predict_label('Houses Bands', ROW('paris'::text, 'd3'::text, 150.0::real, 6, true, 'high'::text)) AS expensive,
       pyml.predict_label('Houses Bands', ROW('brest'::text, 'd3'::text, 30.0::real, 2, false, 'low'::text)) AS cheap,
       round((SELECT sum(p) FROM unnest(pyml.predict_proba('Houses Bands',
           ROW('lyon'::text, 'd3'::text, 80.0::real, 3, false, 'mid'::text))) p)::numeric, 4) AS total_probability;
SELECT pyml.predict('Houses Bands', ROW('paris'::text, 'd3'::text, 150.0::real, 6, true, 'high'::text));
\echo :SQLSTATE

--
-- a snapshot keeps its rules; training again without a relation reuses them
--
SELECT relation AS snapshot_relation, y_column_name
FROM pyml.snapshot('house_prices', 'price',
                   preprocess => '{"size": {"impute": "median"}, "city": {"encode": "one_hot"}}') \gset
SELECT :'snapshot_relation' LIKE 'pyml.snapshot\_%' AS materialized_in_pyml, :'y_column_name' AS y_column_name;
SELECT preprocess, materialized, row_count FROM pyml.snapshots WHERE relation_name = :'snapshot_relation';
SELECT project, task, algorithm, deployed
FROM pyml.train('Houses Snapshot', 'regression', 'house_prices', 'price', test_sampling => 'last',
                preprocess => '{"size": {"impute": "median"}, "city": {"encode": "one_hot"}}');
SELECT project, task, algorithm, deployed FROM pyml.train('Houses Snapshot', algorithm => 'ridge');
SELECT t.algorithm, m.preprocess #> '{city,encode}' AS city_encode, m.preprocess #>> '{size,impute}' AS size_impute
FROM pyml.trained_models t JOIN pyml.models m USING (id)
WHERE t.project = 'Houses Snapshot'
ORDER BY t.id;

-- streams score numbers only: a model with categories is refused
SELECT pyml.stream('Houses Target', 'houses');
\echo :SQLSTATE

--
-- bad rules: refused before training, nothing left behind
--
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"nope": {"impute": "mean"}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"price": {"scale": "standard"}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"size": {"impute": "mean", "scal": "standard"}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"size": {"impute": "average"}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"size": {"impute": "mean", "scale": "log"}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"city": {"encode": "hash"}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"city": {"encode": {"ordinal": ["paris", "paris"]}}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"city": {"impute": "mean"}}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '{"city": "one_hot"}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_prices', 'price', preprocess => '[1, 2]');
\echo :SQLSTATE
SELECT * FROM pyml.train('Houses Bad', 'clustering', 'house_bands', algorithm => 'kmeans',
                         preprocess => '{"city": {"encode": "target"}}');
\echo :SQLSTATE
-- an infinite number is a value, not a missing one: imputation does not replace it
CREATE TABLE houses_infinite AS SELECT * FROM house_prices;
UPDATE houses_infinite SET size = 'Infinity' WHERE size > 210;
SELECT * FROM pyml.train('Houses Bad', 'regression', 'houses_infinite', 'price',
                         preprocess => '{"size": {"impute": "mean"}}');
\echo :SQLSTATE
-- other types need an encoding
CREATE TABLE house_sales AS SELECT date '2024-01-01' + id % 7 AS day, price FROM houses;
SELECT * FROM pyml.train('Houses Bad', 'regression', 'house_sales', 'price');
\echo :SQLSTATE
SELECT project, task, algorithm, deployed
FROM pyml.train('Houses Sales', 'regression', 'house_sales', 'price', preprocess => '{"day": {"encode": "one_hot"}}');
SELECT count(*) AS projects FROM pyml.projects WHERE name IN ('Houses Bad', 'Houses Plain');

SELECT pyml.delete_project(name, force => true) FROM pyml.projects
WHERE name LIKE 'Houses %' ORDER BY name;
DROP VIEW house_prices, house_bands, house_sizes;
DROP TABLE houses, houses_infinite, house_sales;
