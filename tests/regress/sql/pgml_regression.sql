\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML regression workflow, as its users write it with "pyml." for "pgml.":
-- the first training names task, relation and label; later ones name only the algorithm
-- and reuse the project's snapshot; then hyperparameter search and the deployment
-- strategies. (regression.sql covers the prediction paths.) Metrics are rounded (models
-- are seeded); ids are never printed.
--

SELECT pyml.load_dataset('diabetes');

-- train a simple model on the data (no algorithm: the task's default, linear)
SELECT * FROM pyml.train('Diabetes Workflow', 'regression', 'pyml.diabetes', 'target');

-- predictions of a given model id, the project's first
SELECT target, round(pyml.predict(model_id, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])::numeric, 2)
           AS prediction
FROM (SELECT * FROM pyml.diabetes ORDER BY target DESC, bmi DESC LIMIT 5) d
CROSS JOIN LATERAL (
    SELECT pyml.models.id AS model_id FROM pyml.models
    INNER JOIN pyml.projects ON pyml.models.project_id = pyml.projects.id
    WHERE pyml.projects.name = 'Diabetes Workflow'
    ORDER BY pyml.models.id
    LIMIT 1
) models
ORDER BY target DESC, prediction;

-- linear models, reusing the snapshot of the first call
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'ridge');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'lasso');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'elastic_net');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'least_angle');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'lasso_least_angle');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'orthogonal_matching_pursuit');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'bayesian_ridge');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'automatic_relevance_determination');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'stochastic_gradient_descent');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'passive_aggressive');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'ransac');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'theil_sen', hyperparams => '{"max_iter": 10, "max_subpopulation": 100}');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'huber');

-- support vector machines
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'svm', hyperparams => '{"max_iter": 100}');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'nu_svm', hyperparams => '{"max_iter": 10}');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'linear_svm', hyperparams => '{"max_iter": 100}');

-- ensembles
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'ada_boost', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'bagging', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'extra_trees', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'gradient_boosting_trees', hyperparams => '{"n_estimators": 5}');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'random_forest', hyperparams => '{"n_estimators": 5}');

-- gradient boosting: xgboost and catboost take the same form, hyperparams => '{"n_estimators": 10}',
-- once installed in the server's virtual environment (they are optional); lightgbm is built in

-- runtimes: pyml runs Python; 'rust' is accepted (with a NOTICE) and runs Python
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'linear', runtime => 'python');
SELECT * FROM pyml.train('Diabetes Workflow', algorithm => 'linear', runtime => 'rust');

-- check out all that hard work
SELECT t.algorithm, t.runtime, t.deployed, round((m.metrics->>'r2')::numeric, 4) AS r2,
       round((m.metrics->>'mean_squared_error')::numeric, 2) AS mean_squared_error
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Diabetes Workflow'
ORDER BY t.id;

-- deploy the random_forest model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Workflow', 'most_recent', 'random_forest');
SELECT project, task, algorithm, strategy FROM pyml.deployed_models WHERE project = 'Diabetes Workflow';

-- do a hyperparam search on your favorite algorithm (the whole row, as the example prints it)
SELECT pyml.train(
    'Diabetes Workflow',
    algorithm => 'gradient_boosting_trees',
    hyperparams => '{"loss": "squared_error"}'::JSONB,
    search => 'grid',
    search_params => '{
        "max_depth": [1, 2],
        "n_estimators": [20, 40]
    }'
);

-- the candidates tried, and the best refit on all training rows
SELECT m.search, m.hyperparams->'max_depth' AS max_depth, m.hyperparams->'n_estimators' AS n_estimators,
       jsonb_array_length(m.metrics->'search_results') AS candidates,
       round((m.metrics->>'r2')::numeric, 4) AS r2
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
WHERE p.name = 'Diabetes Workflow' AND m.search IS NOT NULL;

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Workflow', 'best_score');
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Workflow', 'most_recent');
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Workflow', 'rollback');
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Workflow', 'best_score', 'svm');

-- check out the improved predictions
SELECT target, round(pyml.predict('Diabetes Workflow', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])::numeric, 2)
           AS prediction
FROM pyml.diabetes
ORDER BY target DESC, bmi DESC
LIMIT 5;
