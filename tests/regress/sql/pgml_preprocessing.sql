\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML preprocessing workflow (diamond prices: text categories and numbers of
-- different scales), as its users write it with "pyml." for "pgml.": standard-scaled numbers,
-- target-encoded categories, and a heterogeneous ROW to predict. pgml loads the data from
-- the Hugging Face Hub (load_dataset('jdxcosta/diamonds')), which pyml does not reach: this
-- file makes a table of the same name and columns from the row number instead.
-- (preprocessing.sql covers every rule.) Rounded values, no ids.
--

CREATE TABLE pyml."jdxcosta/diamonds" AS
SELECT i - 1 AS "Unnamed: 0",
       round((0.2 + (i * 37 % 300) / 100.0)::numeric, 2)::float8 AS carat,
       (ARRAY['Fair', 'Good', 'Very Good', 'Premium', 'Ideal'])[1 + i % 5] AS cut,
       (ARRAY['D', 'E', 'F', 'G', 'H', 'I', 'J'])[1 + i * 3 % 7] AS color,
       (ARRAY['I1', 'SI2', 'SI1', 'VS2', 'VS1', 'VVS2', 'VVS1', 'IF'])[1 + i * 5 % 8] AS clarity,
       (58 + i % 70 / 10.0)::float8 AS depth,
       (53 + i % 90 / 10.0)::float8 AS "table",
       (300 + (i * 37 % 300) * 40 + i % 5 * 200 + i * 3 % 7 * 100 + i * 5 % 8 * 150)::bigint AS price,
       (4 + i % 40 / 10.0)::float8 AS x,
       (4 + i % 41 / 10.0)::float8 AS y,
       (2.5 + i % 30 / 10.0)::float8 AS z
FROM generate_series(1, 1000) i;

-- view the data
SELECT * FROM pyml."jdxcosta/diamonds" ORDER BY "Unnamed: 0" LIMIT 5;

-- drop the Unnamed column, since it's not useful for training
ALTER TABLE pyml."jdxcosta/diamonds" DROP COLUMN "Unnamed: 0";

-- train a model using preprocessors to scale the numeric variables, and target encode the
-- categoricals; the relation name is written as pgml's example writes it, unquoted
SELECT pyml.train(
       project_name => 'Diamond Prices Workflow',
       task => 'regression',
       relation_name => 'pyml.jdxcosta/diamonds',
       y_column_name => 'price',
       algorithm => 'lightgbm',
       preprocess => '{
                      "carat": {"scale": "standard"},
                      "depth": {"scale": "standard"},
                      "table": {"scale": "standard"},
                      "cut": {"encode": "target", "scale": "standard"},
                      "color": {"encode": "target", "scale": "standard"},
                      "clarity": {"encode": "target", "scale": "standard"}
                  }'
);

-- the rule kept for each column
SELECT r.key AS "column", r.value->>'encode' AS encode, r.value->>'scale' AS scale
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id, jsonb_each(m.preprocess) r
WHERE t.project = 'Diamond Prices Workflow'
ORDER BY r.key;

SELECT round((m.metrics->>'r2')::numeric, 2) AS r2
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Diamond Prices Workflow';

-- run some predictions, passing a heterogeneous row (tuple) as input, rather than a
-- homogenous ARRAY[]
SELECT price, round(pyml.predict('Diamond Prices Workflow', (carat, cut, color, clarity, depth, "table", x, y, z))::numeric, -1)
           AS prediction
FROM pyml."jdxcosta/diamonds"
ORDER BY carat DESC, price DESC
LIMIT 5;

-- a cut never seen in training is encoded with the mean price (a target encoding), not refused
SELECT round(pyml.predict('Diamond Prices Workflow', (1.0, 'Superb', 'E', 'VS1', 60.0, 55.0, 5.0, 5.0, 3.0))::numeric, -1)
           > 0 AS predicted;

DROP TABLE pyml."jdxcosta/diamonds";
