\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML clustering workflow (digits, images without their label), as its users
-- write it with "pyml." for "pgml.": a view in schema pyml over the dataset, a first training
-- that names no algorithm (the clustering default, kmeans), the other clustering algorithms
-- on the project's snapshot. Then load_dataset replaces the dataset table as pgml does,
-- dropping the view over it. Rounded metrics, no ids.
--

SELECT pyml.load_dataset('digits');

-- create an unlabeled table of the images for unsupervised learning
CREATE VIEW pyml.digit_vectors AS
SELECT image FROM pyml.digits;

-- view the dataset
SELECT left(image::text, 40) || ',...}' FROM pyml.digit_vectors ORDER BY image LIMIT 5;

-- train a simple model to cluster the data: no algorithm named, kmeans
SELECT * FROM pyml.train('Digit Clusters Workflow', 'clustering', 'pyml.digit_vectors', hyperparams => '{"n_clusters": 10}');

-- check out the predictions: a cluster number per image
SELECT target, pyml.predict('Digit Clusters Workflow', image) AS prediction
FROM pyml.digits
ORDER BY image, target
LIMIT 5;

-- the clusters found, each with its most frequent digit
WITH clustered AS (
    SELECT pyml.predict('Digit Clusters Workflow', image) AS cluster, target FROM pyml.digits
), digits AS (
    SELECT cluster, count(*) AS rows, mode() WITHIN GROUP (ORDER BY target) AS digit
    FROM clustered
    GROUP BY cluster
)
SELECT d.cluster, d.rows, d.digit, count(*) FILTER (WHERE c.target = d.digit) AS rows_of_that_digit
FROM digits d
JOIN clustered c USING (cluster)
GROUP BY d.cluster, d.rows, d.digit
ORDER BY d.cluster;

SELECT * FROM pyml.train('Digit Clusters Workflow', algorithm => 'birch', hyperparams => '{"n_clusters": 10}');
SELECT * FROM pyml.train('Digit Clusters Workflow', algorithm => 'kmeans', hyperparams => '{"n_clusters": 10}');
SELECT * FROM pyml.train('Digit Clusters Workflow', algorithm => 'mini_batch_kmeans', hyperparams => '{"n_clusters": 10}');

-- check out all that hard work: the silhouette of each on the test rows
SELECT t.algorithm, t.deployed, m.hyperparams->'n_clusters' AS n_clusters,
       round((m.metrics->>'silhouette')::numeric, 4) AS silhouette
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Digit Clusters Workflow'
ORDER BY t.id;

SELECT project, strategy, algorithm FROM pyml.deploy('Digit Clusters Workflow', 'most_recent');
SELECT project, strategy, algorithm FROM pyml.deploy('Digit Clusters Workflow', 'best_score');

-- loading the dataset again replaces its table with DROP TABLE ... CASCADE, as pgml does:
-- the view over it goes too, and PostgreSQL's NOTICE names it
SET client_min_messages = notice;
SELECT pyml.load_dataset('digits');
SET client_min_messages = warning;
SELECT to_regclass('pyml.digit_vectors') AS digit_vectors, count(*) AS digits FROM pyml.digits;
