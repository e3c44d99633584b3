\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML joint regression workflow (linnerud: three targets at once), as its users
-- write it with "pyml." for "pgml.": train_joint with the regressors by name on the
-- project's snapshot, then the deployment strategies. (joint.sql covers predict_joint's
-- paths.) Rounded metrics, no ids.
--

SELECT pyml.load_dataset('linnerud');

-- train a simple model on the data
SELECT * FROM pyml.train_joint('Linnerud Workflow', 'regression', 'pyml.linnerud', ARRAY['weight', 'waist', 'pulse']);

-- check out the predictions
SELECT weight, waist, pulse,
       (SELECT array_agg(round(p::numeric, 1) ORDER BY i)
        FROM unnest(pyml.predict_joint('Linnerud Workflow', ARRAY[chins, situps, jumps])) WITH ORDINALITY AS u(p, i))
           AS prediction
FROM pyml.linnerud
ORDER BY chins, situps, jumps
LIMIT 5;

-- linear models (stochastic_gradient_descent and the others of pgml_regression take the same
-- form; on these unscaled numbers SGD diverges)
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'ridge');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'lasso');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'elastic_net');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'least_angle');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'bayesian_ridge');

-- support vector machines
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'svm', hyperparams => '{"max_iter": 100}');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'nu_svm', hyperparams => '{"max_iter": 10}');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'linear_svm', hyperparams => '{"max_iter": 100}');

-- ensembles
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'ada_boost', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'bagging', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'extra_trees', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'gradient_boosting_trees', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train_joint('Linnerud Workflow', algorithm => 'random_forest', hyperparams => '{"n_estimators": 5}');

-- check out all that hard work: one model per call, each predicting the three targets
SELECT t.algorithm, t.deployed, t.y_column_name, round((m.metrics->>'r2')::numeric, 4) AS r2
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Linnerud Workflow'
ORDER BY t.id;

-- deploy the random_forest model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Linnerud Workflow', 'most_recent', 'random_forest');
SELECT project, task, algorithm, strategy FROM pyml.deployed_models WHERE project = 'Linnerud Workflow';

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Linnerud Workflow', 'best_score');
SELECT project, strategy, algorithm FROM pyml.deploy('Linnerud Workflow', 'most_recent');
SELECT project, strategy, algorithm FROM pyml.deploy('Linnerud Workflow', 'rollback');
SELECT project, strategy, algorithm FROM pyml.deploy('Linnerud Workflow', 'best_score', 'svm');

-- check out the improved predictions
SELECT weight, waist, pulse,
       (SELECT array_agg(round(p::numeric, 1) ORDER BY i)
        FROM unnest(pyml.predict_joint('Linnerud Workflow', ARRAY[chins, situps, jumps])) WITH ORDINALITY AS u(p, i))
           AS prediction
FROM pyml.linnerud
ORDER BY chins, situps, jumps
LIMIT 5;
