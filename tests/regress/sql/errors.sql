\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Errors: every failing call is followed by its SQLSTATE (\echo :SQLSTATE), which is the
-- contract (API.md section 6); messages, details and hints are reviewed here like code.
-- Where a hint or detail quotes a library (scikit-learn, LightGBM), VERBOSITY terse hides
-- it, so that a library upgrade does not change this file.
--

SELECT * FROM pyml.load_dataset('iris');
SELECT * FROM pyml.train('Iris Errors', 'classification', 'pyml.iris', 'target');

--
-- unknown project, model or dataset: 42704
--
SELECT pyml.predict('No Such Project', ARRAY[5.1, 3.5, 1.4, 0.2]);
\echo :SQLSTATE
SELECT * FROM pyml.train('No Such Project');
\echo :SQLSTATE
SELECT * FROM pyml.deploy('No Such Project');
\echo :SQLSTATE
SELECT pyml.predict(-1, ARRAY[5.1, 3.5, 1.4, 0.2]);
\echo :SQLSTATE
SELECT pyml.delete_model(-1);
\echo :SQLSTATE
SELECT * FROM pyml.load_dataset('titanic');
\echo :SQLSTATE

--
-- relation or column does not exist: 42P01, 42703
--
SELECT * FROM pyml.train('Iris Errors', relation_name => 'pyml.no_such_table', y_column_name => 'target');
\echo :SQLSTATE
SELECT * FROM pyml.train('Iris Errors', relation_name => 'pyml.iris', y_column_name => 'species');
\echo :SQLSTATE

--
-- bad argument values: 22023
--
-- task
SELECT * FROM pyml.train('Iris Forecast', 'forecasting', 'pyml.iris', 'target');
\echo :SQLSTATE
-- algorithm
SELECT * FROM pyml.train('Iris Errors', algorithm => 'xgboostt');
\echo :SQLSTATE
SELECT * FROM pyml.train('Iris Errors', algorithm => 'lasso');
\echo :SQLSTATE
-- hyperparameter: an unknown name (the hint lists the library's valid names)
\set VERBOSITY terse
SELECT * FROM pyml.train('Iris Errors', algorithm => 'lightgbm', hyperparams => '{"n_estimatorz": 10}');
\echo :SQLSTATE
SELECT * FROM pyml.train('Iris Errors', algorithm => 'linear', hyperparams => '{"max_iterations": 10}');
\echo :SQLSTATE
-- hyperparameter: a bad value (the detail is the library's own message)
SELECT * FROM pyml.train('Iris Errors', algorithm => 'linear', hyperparams => '{"C": -1}');
\echo :SQLSTATE
\set VERBOSITY default
-- test_size and test_sampling
SELECT * FROM pyml.train('Iris Errors', test_size => 0);
\echo :SQLSTATE
SELECT * FROM pyml.train('Iris Errors', relation_name => 'pyml.iris', y_column_name => 'target', test_size => 150);
\echo :SQLSTATE
SELECT * FROM pyml.train('Iris Errors', test_sampling => 'sideways');
\echo :SQLSTATE
-- load_dataset options
SELECT * FROM pyml.load_dataset('iris', subset => 'setosa');
\echo :SQLSTATE
SELECT * FROM pyml.load_dataset('iris', "limit" => -1);
\echo :SQLSTATE
-- feature count
SELECT pyml.predict('Iris Errors', ARRAY[5.1, 3.5, 1.4]);
\echo :SQLSTATE
SELECT pyml.predict('Iris Errors', ARRAY[5.1, 3.5, 1.4, 0.2, 0.0]);
\echo :SQLSTATE
SELECT pyml.predict_proba('Iris Errors', ARRAY[[5.1, 3.5], [1.4, 0.2], [0.0, 0.0]]);
\echo :SQLSTATE
SELECT * FROM pyml.predict_batch('Iris Errors', ARRAY[5.1, 3.5, 1.4, 0.2, 4.9, 3.0, 1.4]);
\echo :SQLSTATE
-- a multi-dimensional array with the right number of values is flattened
SELECT pyml.predict('Iris Errors', ARRAY[[5.1, 3.5], [1.4, 0.2]]) AS prediction;
-- text labels: predict returns numbers, predict_label gives the label
CREATE TABLE iris_species AS
SELECT sepal_length, sepal_width, petal_length, petal_width,
       (ARRAY['setosa', 'versicolor', 'virginica'])[target + 1] AS species
FROM pyml.iris;
SELECT * FROM pyml.train('Iris Species', 'classification', 'iris_species', 'species');
SELECT pyml.predict('Iris Species', ARRAY[5.1, 3.5, 1.4, 0.2]);
\echo :SQLSTATE
SELECT pyml.predict_label('Iris Species', ARRAY[5.1, 3.5, 1.4, 0.2]) AS label;
SELECT classes FROM pyml.trained_models t JOIN pyml.models m USING (id) WHERE t.project = 'Iris Species';
-- a text label cannot be a regression target
SELECT * FROM pyml.train('Iris Species Values', 'regression', 'iris_species', 'species');
\echo :SQLSTATE
-- labels and classes of a regression project
SELECT * FROM pyml.train('Iris Petal Width', 'regression', 'pyml.iris', 'petal_width');
SELECT pyml.predict_label('Iris Petal Width', ARRAY[5.1, 3.5, 1.4, 0]);
\echo :SQLSTATE
SELECT pyml.predict_proba('Iris Petal Width', ARRAY[5.1, 3.5, 1.4, 0]);
\echo :SQLSTATE

--
-- NULLs: 22004 (predict is STRICT: a NULL array gives NULL)
--
SELECT pyml.predict('Iris Errors', NULL::real[]) IS NULL AS null_prediction;
SELECT pyml.predict('Iris Errors', ARRAY[5.1, 3.5, NULL, 0.2]);
\echo :SQLSTATE
SELECT pyml.predict_proba('Iris Errors', ROW(5.1, 3.5, 1.4, NULL::real));
\echo :SQLSTATE
SELECT * FROM pyml.predict_batch('Iris Errors', ARRAY[5.1, 3.5, 1.4, 0.2, 4.9, 3.0, 1.4, NULL]);
\echo :SQLSTATE
SELECT pyml.predict('Iris Errors', ARRAY[5.1, 3.5, 1.4, 'NaN']);
\echo :SQLSTATE
CREATE TABLE iris_null_feature AS SELECT * FROM pyml.iris;
UPDATE iris_null_feature SET petal_width = NULL WHERE sepal_length = 4.3::real;
SELECT * FROM pyml.train('Iris Nulls', 'classification', 'iris_null_feature', 'target');
\echo :SQLSTATE
CREATE TABLE iris_null_label AS SELECT * FROM pyml.iris;
UPDATE iris_null_label SET target = NULL WHERE sepal_length = 4.3::real;
SELECT * FROM pyml.train('Iris Nulls', 'classification', 'iris_null_label', 'target');
\echo :SQLSTATE
CREATE TABLE iris_keyed AS
SELECT row_number() OVER (ORDER BY sepal_length, sepal_width, petal_length, petal_width, target) AS id, *
FROM iris_null_feature;
SELECT pyml.predict_into('Iris Errors', 'iris_keyed', 'iris_predictions');
\echo :SQLSTATE
SELECT to_regclass('iris_predictions') IS NULL AS no_table_left;
-- NaN is a value distinct from NULL in a real label column, and just as unusable
CREATE TABLE iris_nan_label AS
SELECT sepal_length, sepal_width, petal_length, petal_width, target::real AS target FROM pyml.iris;
UPDATE iris_nan_label SET target = 'NaN' WHERE sepal_length = 4.3::real;
SELECT * FROM pyml.train('Iris Nulls', 'classification', 'iris_nan_label', 'target');
\echo :SQLSTATE

--
-- Infinity and -Infinity: 22023 on every path (they are values, not missing ones)
--
CREATE TABLE iris_infinite AS SELECT * FROM pyml.iris;
UPDATE iris_infinite SET petal_width = 'Infinity' WHERE sepal_length = 4.3::real;
SELECT * FROM pyml.train('Iris Nulls', 'classification', 'iris_infinite', 'target');
\echo :SQLSTATE
SELECT * FROM pyml.train('Iris Nulls', 'regression', 'iris_infinite', 'petal_width');
\echo :SQLSTATE
SELECT pyml.predict('Iris Errors', ARRAY[5.1, 3.5, 1.4, 'Infinity']::real[]);
\echo :SQLSTATE
SELECT pyml.predict_proba('Iris Errors', ROW(5.1, 3.5, '-Infinity'::float8, 0.2));
\echo :SQLSTATE
CREATE TABLE iris_infinite_keyed AS
SELECT row_number() OVER (ORDER BY sepal_length, sepal_width, petal_length, petal_width, target) AS id, *
FROM iris_infinite;
SELECT pyml.predict_into('Iris Errors', 'iris_infinite_keyed', 'iris_predictions');
\echo :SQLSTATE
SELECT to_regclass('iris_predictions') IS NULL AS no_table_left;

--
-- predict_into writes one row per key: 55000, 21000, 22004
--
CREATE TABLE iris_scores (id bigint, prediction real, model_id bigint, scored_at timestamptz);
SELECT pyml.predict_into('Iris Errors', 'iris_keyed', 'iris_scores');
\echo :SQLSTATE
CREATE TABLE iris_twice AS SELECT 1 AS id, * FROM pyml.iris;
SELECT pyml.predict_into('Iris Errors', 'iris_twice', 'iris_predictions');
\echo :SQLSTATE
UPDATE iris_twice SET id = NULL;
SELECT pyml.predict_into('Iris Errors', 'iris_twice', 'iris_predictions');
\echo :SQLSTATE
SELECT to_regclass('iris_predictions') IS NULL AS no_table_left;

--
-- prerequisite state: 55000
--
-- nothing deployed yet
SELECT * FROM pyml.train('Iris Undeployed', 'classification', 'pyml.iris', 'target', automatic_deploy => false);
SELECT pyml.predict('Iris Undeployed', ARRAY[5.1, 3.5, 1.4, 0.2]);
\echo :SQLSTATE
SELECT * FROM pyml.deploy('Iris Undeployed', 'rollback');
\echo :SQLSTATE
-- task mismatch
SELECT * FROM pyml.train('Iris Errors', 'regression');
\echo :SQLSTATE
-- no snapshot to reuse
SELECT * FROM pyml.train('Iris New', 'classification');
\echo :SQLSTATE
-- deleting the live model
SELECT pyml.delete_model(pyml.deployed_model('Iris Errors'));
\echo :SQLSTATE
SELECT pyml.delete_project('Iris Errors');
\echo :SQLSTATE
SELECT pyml.delete_model(pyml.deployed_model('Iris Errors'), force => true);
SELECT pyml.predict('Iris Errors', ARRAY[5.1, 3.5, 1.4, 0.2]);
\echo :SQLSTATE

--
-- failed calls left nothing behind
--
SELECT name, task FROM pyml.projects
WHERE name IN ('No Such Project', 'Iris Forecast', 'Iris Nulls', 'Iris New', 'Iris Errors')
ORDER BY name;
SELECT count(*) AS models FROM pyml.trained_models WHERE project = 'Iris Errors';

DROP TABLE iris_species, iris_null_feature, iris_null_label, iris_keyed, iris_nan_label,
    iris_infinite, iris_infinite_keyed, iris_scores, iris_twice;
