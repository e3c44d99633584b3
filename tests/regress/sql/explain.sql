\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Explanation: which features a model relies on (pyml.feature_importance, of the live model)
-- and why it predicted what it did for one row (pyml.explain: contributions that sum, with
-- the __bias__ row, to the raw prediction). Values are rounded: they are the library's.
--

SELECT * FROM pyml.load_dataset('diabetes');

-- one project, several models; each is deployed in turn to be explained
SELECT project, task, algorithm, deployed
FROM pyml.train('Diabetes Explained', 'regression', 'pyml.diabetes', 'target', 'lightgbm',
                hyperparams => '{"n_estimators": 30}');
SELECT project, task, algorithm, deployed
FROM pyml.train('Diabetes Explained', algorithm => 'random_forest',
                hyperparams => '{"n_estimators": 15}', automatic_deploy => false);
SELECT project, task, algorithm, deployed
FROM pyml.train('Diabetes Explained', algorithm => 'linear', automatic_deploy => false);
SELECT project, task, algorithm, deployed
FROM pyml.train('Diabetes Explained', algorithm => 'knn', automatic_deploy => false);

-- one patient to explain
CREATE TABLE diabetes_patient AS
SELECT age, sex, bmi, bp, s1, s2, s3, s4, s5, s6
FROM pyml.diabetes
ORDER BY target, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6
LIMIT 1 OFFSET 200;

--
-- feature_importance of the live model: gain (LightGBM), impurity (trees), |coefficient|
-- (linear); normalised to sum to 1
--
SELECT feature, round(importance::numeric, 2) AS importance
FROM pyml.feature_importance('Diabetes Explained')
ORDER BY importance DESC, feature
LIMIT 3;
SELECT count(*) AS features, round(sum(importance)::numeric, 4) AS total
FROM pyml.feature_importance('Diabetes Explained');

SELECT algorithm FROM pyml.deploy('Diabetes Explained', 'most_recent', 'random_forest');
SELECT feature, round(importance::numeric, 2) AS importance
FROM pyml.feature_importance('Diabetes Explained')
ORDER BY importance DESC, feature
LIMIT 3;

SELECT algorithm FROM pyml.deploy('Diabetes Explained', 'most_recent', 'linear');
SELECT feature, round(importance::numeric, 3) AS importance
FROM pyml.feature_importance('Diabetes Explained')
ORDER BY feature;

-- no native importances (knn): the permutation importance on the test split
SELECT algorithm FROM pyml.deploy('Diabetes Explained', 'most_recent', 'knn');
SELECT feature, round(importance::numeric, 2) AS importance
FROM pyml.feature_importance('Diabetes Explained')
ORDER BY importance DESC, feature
LIMIT 3;

--
-- explain: the contribution of each feature to one prediction
--
-- a linear model: coefficient times value, the intercept as the bias
SELECT algorithm FROM pyml.deploy('Diabetes Explained', 'most_recent', 'linear');
SELECT e.feature, round(e.contribution::numeric, 2) AS contribution
FROM diabetes_patient p,
     pyml.explain('Diabetes Explained', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]) e;
-- with the bias they sum to the prediction; a table row gives the same contributions
SELECT round(sum(e.contribution)::numeric, 2) AS total,
       round(pyml.predict('Diabetes Explained', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])::numeric, 2) AS prediction
FROM diabetes_patient p,
     pyml.explain('Diabetes Explained', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]) e
GROUP BY p.age, p.sex, p.bmi, p.bp, p.s1, p.s2, p.s3, p.s4, p.s5, p.s6;
SELECT bool_and(by_row.contribution = by_array.contribution) AS same
FROM diabetes_patient p,
     pyml.explain('Diabetes Explained', p) WITH ORDINALITY AS by_row(feature, contribution, n)
JOIN pyml.explain('Diabetes Explained', ARRAY[p.age, p.sex, p.bmi, p.bp, p.s1, p.s2, p.s3, p.s4, p.s5, p.s6])
     WITH ORDINALITY AS by_array(feature, contribution, n) USING (n);

-- LightGBM (its own TreeSHAP) and a random forest (decision paths), by model id: contributions sum to the prediction of each
SELECT m.algorithm,
       abs(sum(e.contribution) - pyml.predict(m.id, ARRAY[p.age, p.sex, p.bmi, p.bp, p.s1, p.s2, p.s3, p.s4, p.s5, p.s6])) < 1e-3
           AS sums_to_prediction,
       count(*) FILTER (WHERE e.contribution <> 0 AND e.feature <> '__bias__') > 0 AS some_feature_matters
FROM pyml.trained_models m
CROSS JOIN diabetes_patient p
CROSS JOIN LATERAL pyml.explain(m.id, p) e
WHERE m.project = 'Diabetes Explained' AND m.algorithm IN ('lightgbm', 'random_forest')
GROUP BY m.id, m.algorithm, p.age, p.sex, p.bmi, p.bp, p.s1, p.s2, p.s3, p.s4, p.s5, p.s6
ORDER BY m.algorithm;
SELECT e.feature, round(e.contribution::numeric, 1) AS contribution
FROM diabetes_patient p,
     pyml.explain((SELECT id FROM pyml.trained_models
                   WHERE project = 'Diabetes Explained' AND algorithm = 'lightgbm'), p) e;

-- classification: a binary model explains the raw score of the second class (LightGBM: the
-- log-odds of malignant); a multiclass one the probability of the predicted class
SELECT * FROM pyml.load_dataset('breast_cancer');
SELECT project, task, algorithm, deployed
FROM pyml.train('Breast Cancer Explained', 'classification', 'pyml.breast_cancer', 'malignant',
                'lightgbm', hyperparams => '{"n_estimators": 20}');
WITH tumour AS (
    SELECT * FROM pyml.breast_cancer
    ORDER BY "mean radius", "mean texture", "mean perimeter", "mean area"
    LIMIT 1
)
SELECT round((1 / (1 + exp(-sum(e.contribution))))::numeric, 4) AS from_contributions,
       round((pyml.predict_proba('Breast Cancer Explained', t))[2]::numeric, 4) AS probability
FROM tumour t, pyml.explain('Breast Cancer Explained', t) e
GROUP BY t;

SELECT * FROM pyml.load_dataset('iris');
SELECT project, task, algorithm, deployed
FROM pyml.train('Iris Explained', 'classification', 'pyml.iris', 'target', 'random_forest',
                hyperparams => '{"n_estimators": 10}');
SELECT pyml.predict('Iris Explained', ARRAY[5.9, 3.0, 5.1, 1.8]) AS class,
       pyml.predict_proba('Iris Explained', ARRAY[5.9, 3.0, 5.1, 1.8]) AS probabilities;
SELECT e.feature, round(e.contribution::numeric, 2) AS contribution
FROM pyml.explain('Iris Explained', ARRAY[5.9, 3.0, 5.1, 1.8]) e;
SELECT round(sum(e.contribution)::numeric, 4) AS from_contributions
FROM pyml.explain('Iris Explained', ARRAY[5.9, 3.0, 5.1, 1.8]) e;

-- a NULL array explains nothing (explain is STRICT)
SELECT count(*) AS rows FROM pyml.explain('Diabetes Explained', NULL::real[]);

--
-- errors
--
SELECT * FROM pyml.explain('No Such Project', ARRAY[1, 2]);
\echo :SQLSTATE
SELECT * FROM pyml.explain(-1, ARRAY[1, 2]);
\echo :SQLSTATE
SELECT * FROM pyml.explain('Diabetes Explained', ARRAY[1, 2]);
\echo :SQLSTATE
SELECT * FROM pyml.explain('Diabetes Explained', ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, NULL]);
\echo :SQLSTATE
SELECT * FROM pyml.explain('Diabetes Explained', ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 'Infinity']::real[]);
\echo :SQLSTATE
SELECT * FROM pyml.explain('Diabetes Explained', 'a text'::text);
\echo :SQLSTATE
SELECT * FROM pyml.explain('Diabetes Explained', ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
\echo :SQLSTATE
SELECT * FROM pyml.feature_importance('No Such Project');
\echo :SQLSTATE
-- nothing deployed
SELECT project, task, algorithm, deployed
FROM pyml.train('Diabetes Unexplained', 'regression', 'pyml.diabetes', 'target', automatic_deploy => false);
SELECT * FROM pyml.feature_importance('Diabetes Unexplained');
\echo :SQLSTATE
SELECT * FROM pyml.explain('Diabetes Unexplained', ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
\echo :SQLSTATE
-- a clustering model has no contributions to explain (the message depends on whether
-- shap is installed: only the SQLSTATE is shown)
SELECT project, task, algorithm, deployed
FROM pyml.train('Iris Explained Clusters', 'clustering', 'pyml.iris', algorithm => 'kmeans',
                hyperparams => '{"n_clusters": 3}');
\set VERBOSITY sqlstate
SELECT * FROM pyml.explain('Iris Explained Clusters', ARRAY[6.3, 2.8, 5.1, 1.5, 1]);
\set VERBOSITY default

SELECT pyml.delete_project(name, force => true) FROM pyml.projects
WHERE name IN ('Diabetes Explained', 'Diabetes Unexplained', 'Breast Cancer Explained',
               'Iris Explained', 'Iris Explained Clusters')
ORDER BY name;
DROP TABLE diabetes_patient;
