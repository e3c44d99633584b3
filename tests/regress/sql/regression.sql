\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Regression: pgml's diabetes workflow (pgml-extension/examples/regression.sql)
-- with "pgml." replaced by "pyml.". Numbers are rounded: models are seeded.
--

SELECT * FROM pyml.load_dataset('diabetes');

-- view the dataset
SELECT * FROM pyml.diabetes ORDER BY target DESC, bmi DESC, bp DESC LIMIT 5;

-- train a simple model on the data
SELECT * FROM pyml.train('Diabetes Progression', 'regression', 'pyml.diabetes', 'target');

-- the training data was recorded as a snapshot
SELECT relation_name, y_column_name, test_size, test_sampling, row_count, materialized,
       jsonb_array_length(columns) AS columns
FROM pyml.snapshots
WHERE id = (SELECT max(snapshot_id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id
            WHERE p.name = 'Diabetes Progression');

-- gradient boosting, reusing the project's snapshot
SELECT * FROM pyml.train('Diabetes Progression', algorithm => 'lightgbm');
SELECT * FROM pyml.train('Diabetes Progression', algorithm => 'lightgbm',
                         hyperparams => '{"n_estimators": 25, "learning_rate": 0.05}');

-- check out all that hard work
SELECT t.algorithm, t.status, t.deployed, m.num_features,
       round((m.metrics->>'r2')::numeric, 4) AS r2,
       round((m.metrics->>'mean_absolute_error')::numeric, 4) AS mean_absolute_error,
       round((m.metrics->>'mean_squared_error')::numeric, 4) AS mean_squared_error
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Diabetes Progression'
ORDER BY t.id;

-- every model has the same metric names (timings are never printed: they vary)
SELECT m.algorithm, array_agg(k ORDER BY k) AS metrics
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
CROSS JOIN LATERAL jsonb_object_keys(m.metrics) AS k
WHERE p.name = 'Diabetes Progression'
GROUP BY m.id, m.algorithm
ORDER BY m.id;

-- the hyperparameters actually used, seeds and determinism included
SELECT m.algorithm, m.hyperparams->'n_estimators' AS n_estimators,
       m.hyperparams->'learning_rate' AS learning_rate, m.hyperparams->'random_state' AS random_state,
       m.hyperparams->'deterministic' AS deterministic, m.feature_names
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
WHERE p.name = 'Diabetes Progression'
ORDER BY m.id;

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Progression', 'best_score');
SELECT project, task, algorithm, strategy FROM pyml.deployed_models
WHERE project = 'Diabetes Progression';

-- online: one prediction from an ARRAY
SELECT round(pyml.predict('Diabetes Progression',
    ARRAY[0.038075905, 0.05068012, 0.061696205, 0.021872386, -0.0442235,
          -0.03482076, -0.043400846, -0.002592262, 0.019907486, -0.017646125])::numeric, 4)
    AS prediction;

-- check out the predictions, in a set query
SELECT target,
       round(pyml.predict('Diabetes Progression', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])::numeric, 4)
           AS prediction
FROM pyml.diabetes
ORDER BY target DESC, bmi DESC, bp DESC
LIMIT 10;

-- the same from a ROW(...), from a whole table row (matched by column name), and by model id
SELECT target,
       round(pyml.predict('Diabetes Progression', (age, sex, bmi, bp, s1, s2, s3, s4, s5, s6))::numeric, 4)
           AS from_row,
       round(pyml.predict('Diabetes Progression', d)::numeric, 4) AS from_table_row,
       round(pyml.predict(live.model_id, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])::numeric, 4)
           AS by_model_id
FROM pyml.diabetes d
CROSS JOIN (SELECT model_id FROM pyml.deployed_models WHERE project = 'Diabetes Progression') live
ORDER BY target DESC, bmi DESC, bp DESC
LIMIT 3;

-- every path gives the same number for every row
SELECT count(*) AS rows,
       count(*) FILTER (WHERE pyml.predict('Diabetes Progression', d)
           = pyml.predict('Diabetes Progression', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]))
           AS same_as_array
FROM pyml.diabetes d;

-- predict_batch: n rows of k features flattened into one array, one prediction per row
SELECT i, round(prediction::numeric, 4) AS prediction
FROM pyml.predict_batch('Diabetes Progression', (
    SELECT array_agg(ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6] ORDER BY target DESC, bmi DESC, bp DESC)
    FROM (SELECT * FROM pyml.diabetes ORDER BY target DESC, bmi DESC, bp DESC LIMIT 10) top
)) WITH ORDINALITY AS b(prediction, i)
ORDER BY i;

WITH numbered AS (
    SELECT row_number() OVER (ORDER BY target, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6) AS i, *
    FROM pyml.diabetes
), batch AS (
    SELECT i, prediction
    FROM pyml.predict_batch('Diabetes Progression',
        (SELECT array_agg(ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6] ORDER BY i) FROM numbered))
        WITH ORDINALITY AS b(prediction, i)
)
SELECT count(*) AS rows,
       count(*) FILTER (WHERE b.prediction
           = pyml.predict('Diabetes Progression', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]))
           AS same_as_online
FROM numbered n
JOIN batch b USING (i);

-- predict_into: a batch job scoring a whole relation into a table (created if missing)
CREATE TABLE diabetes_patients AS
SELECT row_number() OVER (ORDER BY target, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6) AS id, *
FROM pyml.diabetes;

SELECT pyml.predict_into('Diabetes Progression', 'diabetes_patients', 'diabetes_predictions');
\d diabetes_predictions

SELECT id, round(prediction::numeric, 4) AS prediction,
       model_id = pyml.deployed_model('Diabetes Progression') AS by_live_model
FROM diabetes_predictions
ORDER BY id
LIMIT 5;

SELECT count(*) AS rows, count(DISTINCT p.id) AS keys,
       count(*) FILTER (WHERE p.prediction
           = pyml.predict('Diabetes Progression', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]))
           AS same_as_online
FROM diabetes_predictions p
JOIN diabetes_patients d USING (id);

-- scoring again replaces the row of each key scored (the table's primary key); rows of
-- other keys are left alone
INSERT INTO diabetes_predictions (id, prediction) VALUES (0, 0);
SELECT pyml.predict_into('Diabetes Progression', 'diabetes_patients', 'diabetes_predictions');
SELECT count(*) AS rows, count(DISTINCT id) AS keys,
       count(*) FILTER (WHERE model_id = pyml.deployed_model('Diabetes Progression')) AS scored
FROM diabetes_predictions;

DROP TABLE diabetes_predictions, diabetes_patients;
