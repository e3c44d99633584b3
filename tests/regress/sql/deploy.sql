\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Deployment: strategies, rollback, deploy by id, the live model over time, the views.
-- The live model of a project is its latest deployment; deploying only appends.
--

SELECT * FROM pyml.load_dataset('diabetes');

-- the first model is deployed (nothing is live yet); a better one replaces it
SELECT * FROM pyml.train('Diabetes Deployments', 'regression', 'pyml.diabetes', 'target', 'lasso');
SELECT * FROM pyml.train('Diabetes Deployments', algorithm => 'ridge');
-- a worse one is not deployed
SELECT * FROM pyml.train('Diabetes Deployments', algorithm => 'random_forest',
                         hyperparams => '{"n_estimators": 10}');
-- nor a better one trained with automatic_deploy => false
SELECT * FROM pyml.train('Diabetes Deployments', algorithm => 'linear', automatic_deploy => false);

SELECT algorithm, status, deployed, round((metrics->>'r2')::numeric, 4) AS r2
FROM pyml.trained_models
WHERE project = 'Diabetes Deployments'
ORDER BY id;

SELECT strategy, algorithm FROM pyml.overview
WHERE project = 'Diabetes Deployments'
ORDER BY deployment_id;

-- the live model answers predict
SELECT algorithm FROM pyml.models WHERE id = pyml.deployed_model('Diabetes Deployments');
SELECT round(pyml.predict('Diabetes Deployments',
    ARRAY[0.038075905, 0.05068012, 0.061696205, 0.021872386, -0.0442235,
          -0.03482076, -0.043400846, -0.002592262, 0.019907486, -0.017646125])::numeric, 4)
    AS prediction;

SELECT clock_timestamp() AS before_best_score \gset

-- deploy the "best" model for prediction use
SELECT * FROM pyml.deploy('Diabetes Deployments', 'best_score');
SELECT round(pyml.predict('Diabetes Deployments',
    ARRAY[0.038075905, 0.05068012, 0.061696205, 0.021872386, -0.0442235,
          -0.03482076, -0.043400846, -0.002592262, 0.019907486, -0.017646125])::numeric, 4)
    AS prediction;

-- deploy the random_forest model
SELECT * FROM pyml.deploy('Diabetes Deployments', 'most_recent', 'random_forest');

SELECT clock_timestamp() AS before_rollback \gset

-- rollback goes to the model deployed before the live one; twice goes back again
SELECT * FROM pyml.deploy('Diabetes Deployments', 'rollback');
SELECT * FROM pyml.deploy('Diabetes Deployments', 'rollback');

-- candidates filtered by algorithm
SELECT * FROM pyml.deploy('Diabetes Deployments', 'best_score', 'ridge');
SELECT * FROM pyml.deploy('Diabetes Deployments', 'most_recent');
SELECT * FROM pyml.deploy('Diabetes Deployments');

-- one model by id: strategy "specific"
SELECT * FROM pyml.deploy((SELECT id FROM pyml.trained_models
                           WHERE project = 'Diabetes Deployments' AND algorithm = 'lasso'));
SELECT * FROM pyml.deploy(model_id => (SELECT id FROM pyml.trained_models
                                       WHERE project = 'Diabetes Deployments' AND algorithm = 'lasso'));

-- the whole history, oldest first
SELECT strategy, algorithm, relation_name, y_column_name, test_sampling, test_size,
       deployed_by = current_user AS by_me
FROM pyml.overview
WHERE project = 'Diabetes Deployments'
ORDER BY deployment_id;

SELECT project, task, algorithm, strategy, round((metrics->>'r2')::numeric, 4) AS r2,
       model_id = pyml.deployed_model('Diabetes Deployments') AS is_live
FROM pyml.deployed_models
WHERE project = 'Diabetes Deployments';

SELECT algorithm, deployed FROM pyml.trained_models
WHERE project = 'Diabetes Deployments'
ORDER BY id;

-- which model was live at a given time
SELECT m.algorithm FROM pyml.models m
WHERE m.id = pyml.deployed_model('Diabetes Deployments', :'before_best_score');
SELECT m.algorithm FROM pyml.models m
WHERE m.id = pyml.deployed_model('Diabetes Deployments', :'before_rollback');
SELECT m.algorithm FROM pyml.models m
WHERE m.id = pyml.deployed_model('Diabetes Deployments', at => now());
SELECT pyml.deployed_model('Diabetes Deployments', '-infinity') IS NULL AS nothing_before_training;

-- deploy is transactional: a rolled-back deploy changes nothing
BEGIN;
SELECT * FROM pyml.deploy('Diabetes Deployments', 'best_score');
SELECT algorithm FROM pyml.deployed_models WHERE project = 'Diabetes Deployments';
SELECT round(pyml.predict('Diabetes Deployments',
    ARRAY[0.038075905, 0.05068012, 0.061696205, 0.021872386, -0.0442235,
          -0.03482076, -0.043400846, -0.002592262, 0.019907486, -0.017646125])::numeric, 4)
    AS prediction;
ROLLBACK;
SELECT algorithm FROM pyml.deployed_models WHERE project = 'Diabetes Deployments';
SELECT round(pyml.predict('Diabetes Deployments',
    ARRAY[0.038075905, 0.05068012, 0.061696205, 0.021872386, -0.0442235,
          -0.03482076, -0.043400846, -0.002592262, 0.019907486, -0.017646125])::numeric, 4)
    AS prediction;
SELECT count(*) AS deployments FROM pyml.overview WHERE project = 'Diabetes Deployments';

-- a trained model is never rewritten
UPDATE pyml.models SET algorithm = 'svm'
WHERE project_id = (SELECT id FROM pyml.projects WHERE name = 'Diabetes Deployments');
\echo :SQLSTATE

-- strategy and candidates errors
SELECT * FROM pyml.deploy('Diabetes Deployments', 'worst_score');
\echo :SQLSTATE
SELECT * FROM pyml.deploy('Diabetes Deployments', 'best_score', 'svm');
\echo :SQLSTATE
SELECT * FROM pyml.deploy('Diabetes Deployments', 'best_score', 'no_such_algorithm');
\echo :SQLSTATE
SELECT * FROM pyml.deploy(-1);
\echo :SQLSTATE
SELECT pyml.deployed_model('No Such Project');
\echo :SQLSTATE

-- a model that is not live can be deleted, with its deployments
SELECT pyml.delete_model((SELECT id FROM pyml.trained_models
                          WHERE project = 'Diabetes Deployments' AND algorithm = 'random_forest'));
SELECT algorithm, deployed FROM pyml.trained_models
WHERE project = 'Diabetes Deployments'
ORDER BY id;
SELECT strategy, algorithm FROM pyml.overview
WHERE project = 'Diabetes Deployments'
ORDER BY deployment_id;

-- a whole project, live model included, with force
SELECT pyml.delete_project('Diabetes Deployments', force => true);
SELECT count(*) AS models FROM pyml.trained_models WHERE project = 'Diabetes Deployments';
SELECT count(*) AS projects FROM pyml.projects WHERE name = 'Diabetes Deployments';
