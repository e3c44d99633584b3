\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML multi-class classification workflow (iris), as its users write it with
-- "pyml." for "pgml.": a view in schema pyml to train on, the classifiers by name on the
-- project's snapshot, a search over three hyperparameters and the deployment strategies.
-- pgml's view shuffles the rows with random(); this one orders them, so that the output is
-- the same on every run. Rounded metrics, no ids.
--

SELECT pyml.load_dataset('iris');

DROP VIEW IF EXISTS pyml.iris_view;
CREATE VIEW pyml.iris_view AS
SELECT * FROM pyml.iris ORDER BY sepal_length, sepal_width, petal_length, petal_width, target;

-- train a simple model to classify the data
SELECT * FROM pyml.train('Iris Workflow', 'classification', 'pyml.iris_view', 'target');

-- check out the predictions
SELECT target, pyml.predict('Iris Workflow', ARRAY[sepal_length, sepal_width, petal_length, petal_width]) AS prediction
FROM pyml.iris_view
ORDER BY sepal_length, sepal_width, petal_length, petal_width, target
LIMIT 5;

-- view raw class probabilities (classes 0, 1, 2)
SELECT target,
       (SELECT array_agg(round(p::numeric, 3) ORDER BY i)
        FROM unnest(pyml.predict_proba('Iris Workflow', ARRAY[sepal_length, sepal_width, petal_length, petal_width]))
             WITH ORDINALITY AS u(p, i)) AS prediction
FROM pyml.iris_view
ORDER BY sepal_length, sepal_width, petal_length, petal_width, target
LIMIT 5;

-- linear models
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'ridge');

-- support vector machines
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'svm');
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'nu_svm');
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'linear_svm');

-- ensembles
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'ada_boost');
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'bagging');
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'extra_trees', hyperparams => '{"n_estimators": 10}');
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'gradient_boosting_trees', hyperparams => '{"n_estimators": 10}');
SELECT * FROM pyml.train('Iris Workflow', algorithm => 'random_forest', hyperparams => '{"n_estimators": 10}');

-- gradient boosting: xgboost and catboost take the same form once installed in the server's
-- virtual environment (they are optional)

-- check out all that hard work
SELECT t.algorithm, t.deployed, round((m.metrics->>'f1')::numeric, 4) AS f1,
       round((m.metrics->>'accuracy')::numeric, 4) AS accuracy
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Iris Workflow'
ORDER BY t.id;

-- deploy the random_forest model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Iris Workflow', 'most_recent', 'random_forest');
SELECT project, task, algorithm, strategy FROM pyml.deployed_models WHERE project = 'Iris Workflow';

-- do a hyperparam search on your favorite algorithm
SELECT pyml.train(
    'Iris Workflow',
    algorithm => 'gradient_boosting_trees',
    hyperparams => '{"random_state": 0}',
    search => 'grid',
    search_params => '{
        "n_estimators": [10, 20],
        "max_leaf_nodes": [2, 4],
        "criterion": ["friedman_mse", "squared_error"]
    }'
);

SELECT m.search, m.hyperparams->'n_estimators' AS n_estimators,
       m.hyperparams->'max_leaf_nodes' AS max_leaf_nodes, m.hyperparams->'criterion' AS criterion,
       jsonb_array_length(m.metrics->'search_results') AS candidates
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
WHERE p.name = 'Iris Workflow' AND m.search IS NOT NULL;

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Iris Workflow', 'best_score');
SELECT project, strategy, algorithm FROM pyml.deploy('Iris Workflow', 'most_recent');
SELECT project, strategy, algorithm FROM pyml.deploy('Iris Workflow', 'rollback');
SELECT project, strategy, algorithm FROM pyml.deploy('Iris Workflow', 'best_score', 'svm');

-- check out the improved predictions: the confusion matrix of the live model
SELECT target, pyml.predict('Iris Workflow', ARRAY[sepal_length, sepal_width, petal_length, petal_width]) AS prediction,
       count(*)
FROM pyml.iris_view
GROUP BY 1, 2
ORDER BY 1, 2;

DROP VIEW pyml.iris_view;
