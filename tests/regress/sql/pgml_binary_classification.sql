\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML binary classification workflow (breast cancer), as its users write it with
-- "pyml." for "pgml.": train, predict, class probabilities, the classifiers by name on the
-- project's snapshot, a hyperparameter search and the deployment strategies.
-- (classification.sql covers the label and probability paths.) Rounded metrics, no ids.
--

SELECT pyml.load_dataset('breast_cancer');

-- train a simple model to classify the data
SELECT * FROM pyml.train('Breast Cancer Workflow', 'classification', 'pyml.breast_cancer', 'malignant');

-- check out the predictions (true = 1)
SELECT malignant, pyml.predict(
    'Breast Cancer Workflow',
    ARRAY[
        "mean radius",
        "mean texture",
        "mean perimeter",
        "mean area",
        "mean smoothness",
        "mean compactness",
        "mean concavity",
        "mean concave points",
        "mean symmetry",
        "mean fractal dimension",
        "radius error",
        "texture error",
        "perimeter error",
        "area error",
        "smoothness error",
        "compactness error",
        "concavity error",
        "concave points error",
        "symmetry error",
        "fractal dimension error",
        "worst radius",
        "worst texture",
        "worst perimeter",
        "worst area",
        "worst smoothness",
        "worst compactness",
        "worst concavity",
        "worst concave points",
        "worst symmetry",
        "worst fractal dimension"
    ]
) AS prediction
FROM pyml.breast_cancer
ORDER BY "mean radius" DESC, "mean texture" DESC
LIMIT 5;

-- view raw class probabilities (false, true)
SELECT malignant,
       (SELECT array_agg(round(p::numeric, 3) ORDER BY i)
        FROM unnest(pyml.predict_proba('Breast Cancer Workflow', b)) WITH ORDINALITY AS u(p, i))
           AS prediction
FROM pyml.breast_cancer b
ORDER BY "mean radius" DESC, "mean texture" DESC
LIMIT 5;

-- linear models
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'ridge');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'stochastic_gradient_descent');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'perceptron');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'passive_aggressive');

-- support vector machines
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'svm');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'nu_svm');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'linear_svm');

-- ensembles
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'ada_boost');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'bagging');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'extra_trees', hyperparams => '{"n_estimators": 10}');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'gradient_boosting_trees', hyperparams => '{"n_estimators": 10}');
SELECT * FROM pyml.train('Breast Cancer Workflow', algorithm => 'random_forest', hyperparams => '{"n_estimators": 10}');

-- gradient boosting: xgboost takes the same form once installed in the server's virtual
-- environment (it is optional)

-- check out all that hard work
SELECT t.algorithm, t.deployed, round((m.metrics->>'f1')::numeric, 4) AS f1,
       round((m.metrics->>'accuracy')::numeric, 4) AS accuracy,
       m.metrics ? 'roc_auc' AS has_roc_auc
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Breast Cancer Workflow'
ORDER BY t.id;

-- deploy the random_forest model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Breast Cancer Workflow', 'most_recent', 'random_forest');
SELECT project, task, algorithm, strategy FROM pyml.deployed_models WHERE project = 'Breast Cancer Workflow';

-- do a hyperparam search on your favorite algorithm
SELECT pyml.train(
    'Breast Cancer Workflow',
    algorithm => 'gradient_boosting_trees',
    search => 'grid',
    search_params => '{
        "n_estimators": [2, 4],
        "max_depth": [1, 2, 3]
    }'
);

SELECT m.algorithm, m.search, m.hyperparams->'n_estimators' AS n_estimators,
       m.hyperparams->'max_depth' AS max_depth,
       jsonb_array_length(m.metrics->'search_results') AS candidates
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
WHERE p.name = 'Breast Cancer Workflow' AND m.search IS NOT NULL;

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Breast Cancer Workflow', 'best_score');
SELECT project, strategy, algorithm FROM pyml.deploy('Breast Cancer Workflow', 'most_recent');
SELECT project, strategy, algorithm FROM pyml.deploy('Breast Cancer Workflow', 'rollback');
SELECT project, strategy, algorithm FROM pyml.deploy('Breast Cancer Workflow', 'best_score', 'svm');

-- check out the improved predictions: the confusion matrix of the live model
SELECT malignant, pyml.predict('Breast Cancer Workflow', b) AS prediction, count(*)
FROM pyml.breast_cancer b
GROUP BY 1, 2
ORDER BY 1, 2;
