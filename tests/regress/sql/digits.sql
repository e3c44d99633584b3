\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Image classification: pgml's handwritten digits workflow
-- (pgml-extension/examples/image_classification.sql) with "pgml." replaced by "pyml.".
-- One smallint[][] feature column (8x8 images), flattened into 64 features.
--

SELECT * FROM pyml.load_dataset('digits');
\d pyml.digits

-- view the dataset
SELECT left(image::text, 40) || ',...}', target
FROM pyml.digits
ORDER BY image, target
LIMIT 10;

SELECT array_dims(image) AS dims, count(*) FROM pyml.digits GROUP BY 1 ORDER BY 1;

-- train a simple model to classify the data
SELECT * FROM pyml.train('Handwritten Digits', 'classification', 'pyml.digits', 'target');

-- gradient boosting, reusing the project's snapshot
SELECT * FROM pyml.train('Handwritten Digits', algorithm => 'lightgbm', hyperparams => '{"n_estimators": 10}');

-- check out all that hard work: the image became 64 features, image[1] .. image[64]
SELECT t.algorithm, t.deployed, m.num_features, m.feature_names[1:3] AS first_features,
       m.feature_names[64] AS last_feature, m.classes,
       round((m.metrics->>'f1')::numeric, 4) AS f1,
       round((m.metrics->>'accuracy')::numeric, 4) AS accuracy,
       round((m.metrics->>'mcc')::numeric, 4) AS mcc
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Handwritten Digits'
ORDER BY t.id;

-- deploy the "best" model for prediction use
SELECT * FROM pyml.deploy('Handwritten Digits', 'best_score');

-- check out the predictions: the smallint[][] image is flattened
SELECT target, pyml.predict('Handwritten Digits', image) AS prediction,
       pyml.predict_label('Handwritten Digits', image) AS label
FROM pyml.digits
ORDER BY image, target
LIMIT 10;

-- view raw class probabilities (10 classes)
SELECT target,
       (SELECT array_agg(round(p::numeric, 2) ORDER BY i)
        FROM unnest(pyml.predict_proba('Handwritten Digits', image)) WITH ORDINALITY AS u(p, i))
           AS probabilities
FROM pyml.digits
ORDER BY image, target
LIMIT 5;

-- the 2-D array, the same values flattened by hand, and the table row give the same answer
SELECT count(*) AS rows,
       count(*) FILTER (WHERE pyml.predict('Handwritten Digits', image) = target) AS correct,
       count(*) FILTER (WHERE pyml.predict('Handwritten Digits', image)
           = pyml.predict('Handwritten Digits', ARRAY(SELECT unnest(image)))) AS same_flattened,
       count(*) FILTER (WHERE pyml.predict('Handwritten Digits', image)
           = pyml.predict('Handwritten Digits', d)) AS same_from_row
FROM pyml.digits d;

-- per class: rows and correct predictions of the live model
SELECT target, count(*) AS rows,
       count(*) FILTER (WHERE pyml.predict('Handwritten Digits', image) = target) AS correct
FROM pyml.digits
GROUP BY target
ORDER BY target;

-- predict_batch over smallint[][][] (n images of 8x8)
SELECT i, round(prediction::numeric, 4) AS prediction
FROM pyml.predict_batch('Handwritten Digits', (
    SELECT array_agg(image ORDER BY image, target)
    FROM (SELECT * FROM pyml.digits ORDER BY image, target LIMIT 10) first_ten
)) WITH ORDINALITY AS b(prediction, i)
ORDER BY i;
