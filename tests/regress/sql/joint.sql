\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Joint regression: pgml's linnerud workflow (pgml-extension/examples/joint_regression.sql)
-- with "pgml." replaced by "pyml.": three targets predicted at once.
--

SELECT * FROM pyml.load_dataset('linnerud');

-- view the dataset
SELECT * FROM pyml.linnerud ORDER BY chins, situps, jumps LIMIT 10;

-- train a simple model on the data
SELECT * FROM pyml.train_joint('Exercise vs Physiology', 'regression', 'pyml.linnerud', ARRAY['weight', 'waist', 'pulse']);

-- gradient boosting (one booster per target), reusing the project's snapshot
SELECT * FROM pyml.train_joint('Exercise vs Physiology', algorithm => 'lightgbm',
                               hyperparams => '{"n_estimators": 10, "min_child_samples": 2}');

-- check out all that hard work
SELECT t.algorithm, t.deployed, t.y_column_name, m.num_features, m.feature_names,
       round((m.metrics->>'r2')::numeric, 4) AS r2,
       round((m.metrics->>'mean_absolute_error')::numeric, 4) AS mean_absolute_error,
       round((m.metrics->>'mean_squared_error')::numeric, 4) AS mean_squared_error
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Exercise vs Physiology'
ORDER BY t.id;

-- artifacts: one skops file for the linear model, one LightGBM model per target
SELECT m.algorithm, f.part, f.format, length(f.sha256) AS sha256_length
FROM pyml.files f
JOIN pyml.models m ON m.id = f.model_id
JOIN pyml.projects p ON p.id = m.project_id
WHERE p.name = 'Exercise vs Physiology'
ORDER BY m.id, f.part;

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Exercise vs Physiology', 'best_score');

-- check out the predictions: weight, waist, pulse
SELECT weight, waist, pulse,
       (SELECT array_agg(round(v::numeric, 4) ORDER BY i)
        FROM unnest(pyml.predict_joint('Exercise vs Physiology', ARRAY[chins, situps, jumps]))
             WITH ORDINALITY AS u(v, i)) AS prediction
FROM pyml.linnerud
ORDER BY chins, situps, jumps
LIMIT 10;

-- the other model, by id (deployed or not)
SELECT weight, waist, pulse,
       (SELECT array_agg(round(v::numeric, 4) ORDER BY i)
        FROM unnest(pyml.predict_joint(m.id, ARRAY[chins, situps, jumps]))
             WITH ORDINALITY AS u(v, i)) AS prediction
FROM pyml.linnerud
CROSS JOIN (SELECT m.id FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id
            WHERE p.name = 'Exercise vs Physiology' AND m.algorithm = 'linear') m
ORDER BY chins, situps, jumps
LIMIT 5;

-- every row gets three values
SELECT count(*) AS rows,
       count(*) FILTER (WHERE cardinality(pyml.predict_joint('Exercise vs Physiology',
                                                             ARRAY[chins, situps, jumps])) = 3)
           AS three_values
FROM pyml.linnerud;
