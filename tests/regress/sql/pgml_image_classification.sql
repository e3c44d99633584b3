\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML image classification workflow (handwritten digits: one smallint[][] column
-- of 8x8 images), as its users write it with "pyml." for "pgml.": the classifiers by name on
-- the project's snapshot, a search over SVM kernels and the deployment strategies.
-- (digits.sql covers the prediction paths of array columns.) Rounded metrics, no ids.
--

SELECT pyml.load_dataset('digits');

-- train a simple model to classify the data
SELECT * FROM pyml.train('Digits Workflow', 'classification', 'pyml.digits', 'target');

-- check out the predictions
SELECT target, pyml.predict('Digits Workflow', image) AS prediction
FROM pyml.digits
ORDER BY image, target
LIMIT 5;

-- view raw class probabilities (classes 0 to 9)
SELECT target,
       (SELECT array_agg(round(p::numeric, 2) ORDER BY i)
        FROM unnest(pyml.predict_proba('Digits Workflow', image)) WITH ORDINALITY AS u(p, i))
           AS prediction
FROM pyml.digits
ORDER BY image, target
LIMIT 5;

-- linear models
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'ridge');
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'stochastic_gradient_descent');
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'perceptron');
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'passive_aggressive');

-- support vector machines
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'svm');
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'nu_svm');
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'linear_svm');

-- ensembles (the other ensembles take the same form: see pgml_binary_classification)
SELECT * FROM pyml.train('Digits Workflow', algorithm => 'random_forest', hyperparams => '{"n_estimators": 10}');

-- check out all that hard work
SELECT t.algorithm, t.deployed, round((m.metrics->>'f1')::numeric, 4) AS f1,
       round((m.metrics->>'accuracy')::numeric, 4) AS accuracy
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Digits Workflow'
ORDER BY t.id;

-- deploy the random_forest model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Workflow', 'most_recent', 'random_forest');
SELECT project, task, algorithm, strategy FROM pyml.deployed_models WHERE project = 'Digits Workflow';

-- do a hyperparam search on your favorite algorithm
SELECT pyml.train(
    'Digits Workflow',
    algorithm => 'svm',
    hyperparams => '{"random_state": 0}',
    search => 'grid',
    search_params => '{
        "kernel": ["linear", "poly", "sigmoid"],
        "shrinking": [true, false]
    }'
);

SELECT m.search, m.hyperparams->'kernel' AS kernel, m.hyperparams->'shrinking' AS shrinking,
       jsonb_array_length(m.metrics->'search_results') AS candidates,
       round((m.metrics->>'f1')::numeric, 4) AS f1
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
WHERE p.name = 'Digits Workflow' AND m.search IS NOT NULL;

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Workflow', 'best_score');
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Workflow', 'most_recent');
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Workflow', 'rollback');
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Workflow', 'best_score', 'svm');

-- check out the improved predictions: rows and correct predictions per digit
SELECT target, count(*) AS rows,
       count(*) FILTER (WHERE pyml.predict('Digits Workflow', image) = target) AS correct
FROM pyml.digits
GROUP BY target
ORDER BY target;
