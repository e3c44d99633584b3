\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Classification: pgml's breast cancer (binary) and iris (multiclass) workflows
-- (pgml-extension/examples/binary_classification.sql, multi_classification.sql)
-- with "pgml." replaced by "pyml.". Numbers are rounded: models are seeded.
--

--
-- Binary: breast_cancer, label "malignant" boolean
--
SELECT * FROM pyml.load_dataset('breast_cancer');

-- view the dataset
SELECT "mean radius", "mean texture", "worst area", malignant
FROM pyml.breast_cancer
ORDER BY "mean radius" DESC, "mean texture" DESC
LIMIT 5;

SELECT malignant, count(*) FROM pyml.breast_cancer GROUP BY malignant ORDER BY malignant;

-- train a simple model to classify the data
SELECT * FROM pyml.train('Breast Cancer Detection', 'classification', 'pyml.breast_cancer', 'malignant');

-- gradient boosting, reusing the project's snapshot
SELECT * FROM pyml.train('Breast Cancer Detection', algorithm => 'lightgbm');

-- check out all that hard work
SELECT t.algorithm, t.deployed, m.num_features, m.classes,
       round((m.metrics->>'f1')::numeric, 4) AS f1,
       round((m.metrics->>'precision')::numeric, 4) AS precision,
       round((m.metrics->>'recall')::numeric, 4) AS recall,
       round((m.metrics->>'accuracy')::numeric, 4) AS accuracy,
       round((m.metrics->>'mcc')::numeric, 4) AS mcc,
       round((m.metrics->>'roc_auc')::numeric, 4) AS roc_auc,
       round((m.metrics->>'log_loss')::numeric, 4) AS log_loss
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Breast Cancer Detection'
ORDER BY t.id;

SELECT m.algorithm, array_agg(k ORDER BY k) AS metrics
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
CROSS JOIN LATERAL jsonb_object_keys(m.metrics) AS k
WHERE p.name = 'Breast Cancer Detection'
GROUP BY m.id, m.algorithm
ORDER BY m.id;

-- deploy the "best" model for prediction use
SELECT * FROM pyml.deploy('Breast Cancer Detection', 'best_score');

-- check out the predictions: the class label itself (true = 1), as a number
SELECT malignant, pyml.predict(
    'Breast Cancer Detection',
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
WHERE "mean radius" BETWEEN 13.5 AND 14
ORDER BY "mean radius", "mean texture"
LIMIT 10;

-- view raw class probabilities, in pyml.models.classes order (false, true), and the label
SELECT malignant,
       (SELECT array_agg(round(p::numeric, 4) ORDER BY i)
        FROM unnest(pyml.predict_proba('Breast Cancer Detection', b)) WITH ORDINALITY AS u(p, i))
           AS probabilities,
       pyml.predict_label('Breast Cancer Detection', b) AS label
FROM pyml.breast_cancer b
WHERE "mean radius" BETWEEN 13.5 AND 14
ORDER BY "mean radius", "mean texture"
LIMIT 10;

-- over every row: predict, predict_label and predict_proba agree; the confusion matrix
SELECT malignant, pyml.predict('Breast Cancer Detection', b) AS prediction,
       pyml.predict_label('Breast Cancer Detection', b) AS label,
       count(*) AS rows,
       bool_and(((pyml.predict_proba('Breast Cancer Detection', b))[2] > 0.5)
                = (pyml.predict('Breast Cancer Detection', b) = 1)) AS proba_agrees,
       bool_and(abs((SELECT sum(p) FROM unnest(pyml.predict_proba('Breast Cancer Detection', b)) p)
                    - 1) < 1e-6) AS proba_sums_to_1
FROM pyml.breast_cancer b
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

--
-- Multiclass: iris, label "target" integer 0, 1, 2
--
SELECT * FROM pyml.load_dataset('iris');

-- view the dataset
SELECT * FROM pyml.iris ORDER BY sepal_length, sepal_width, petal_length, petal_width LIMIT 5;

-- train a simple model to classify the data
SELECT * FROM pyml.train('Iris Flower Types', 'classification', 'pyml.iris', 'target');
SELECT * FROM pyml.train('Iris Flower Types', algorithm => 'lightgbm', hyperparams => '{"n_estimators": 10}');

SELECT t.algorithm, t.deployed, m.classes,
       round((m.metrics->>'f1')::numeric, 4) AS f1,
       round((m.metrics->>'precision')::numeric, 4) AS precision,
       round((m.metrics->>'recall')::numeric, 4) AS recall,
       round((m.metrics->>'accuracy')::numeric, 4) AS accuracy,
       round((m.metrics->>'mcc')::numeric, 4) AS mcc,
       m.metrics ? 'roc_auc' AS has_roc_auc
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Iris Flower Types'
ORDER BY t.id;

-- check out the predictions
SELECT target,
       pyml.predict('Iris Flower Types', ARRAY[sepal_length, sepal_width, petal_length, petal_width])
           AS prediction,
       pyml.predict_label('Iris Flower Types', ARRAY[sepal_length, sepal_width, petal_length, petal_width])
           AS label
FROM pyml.iris
ORDER BY sepal_length, sepal_width, petal_length, petal_width
LIMIT 10;

-- view raw class probabilities
SELECT target,
       (SELECT array_agg(round(p::numeric, 4) ORDER BY i)
        FROM unnest(pyml.predict_proba('Iris Flower Types',
                                       ARRAY[sepal_length, sepal_width, petal_length, petal_width]))
             WITH ORDINALITY AS u(p, i)) AS probabilities
FROM pyml.iris
ORDER BY sepal_length, sepal_width, petal_length, petal_width
LIMIT 10;

-- the confusion matrix of the live model over every row
SELECT target,
       pyml.predict('Iris Flower Types', ARRAY[sepal_length, sepal_width, petal_length, petal_width])
           AS prediction,
       count(*) AS rows
FROM pyml.iris
GROUP BY 1, 2
ORDER BY 1, 2;

-- the other model, by id (deployed or not)
SELECT m.algorithm, i.target,
       pyml.predict(m.id, ARRAY[i.sepal_length, i.sepal_width, i.petal_length, i.petal_width])
           AS prediction,
       count(*) AS rows
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
CROSS JOIN pyml.iris i
WHERE p.name = 'Iris Flower Types' AND m.algorithm = 'lightgbm'
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
