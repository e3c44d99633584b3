\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- The PostgresML decomposition workflow (digits: 64 pixels reduced to a few components), as
-- its users write it with "pyml." for "pgml.": a first training that names no algorithm (the
-- decomposition default, pca), pyml.decompose, a second training with n_components, the
-- deployment strategies. One difference, on purpose: pyml.predict of a decomposition project
-- is refused (22023, with a hint to use pyml.decompose), where pgml returns the first
-- component as if it were a prediction. Rounded values, no ids.
--

SELECT pyml.load_dataset('digits');

-- create a view of just the vectors for decomposition, without any labels
CREATE VIEW digit_vectors AS
SELECT image FROM pyml.digits;

-- no algorithm named: pca, keeping every component (64)
SELECT * FROM pyml.train('Digits Reduction Workflow', 'decomposition', 'digit_vectors');

-- check out the decomposed vectors: their length and first three components
SELECT target, array_length(v, 1) AS components,
       ARRAY[round(v[1]::numeric, 2), round(v[2]::numeric, 2), round(v[3]::numeric, 2)] AS first_three
FROM (SELECT * FROM pyml.digits ORDER BY image, target LIMIT 5) d,
     pyml.decompose('Digits Reduction Workflow', image) AS v
ORDER BY image, target;

-- reduce the image vectors from 64 dimensions to 3 components, reusing the snapshot
SELECT * FROM pyml.train('Digits Reduction Workflow', hyperparams => '{"n_components": 3}');

-- the live model is still the first, which explains more of the variance: 64 components
SELECT array_length(pyml.decompose('Digits Reduction Workflow', image), 1) AS components
FROM pyml.digits
ORDER BY image, target
LIMIT 1;

-- check out all that hard work
SELECT t.algorithm, t.deployed, m.hyperparams->'n_components' AS n_components,
       round((m.metrics->>'cumulative_explained_variance')::numeric, 4) AS cumulative_explained_variance
FROM pyml.trained_models t
JOIN pyml.models m ON m.id = t.id
WHERE t.project = 'Digits Reduction Workflow'
ORDER BY (m.metrics->>'cumulative_explained_variance')::float8 DESC;

-- deploy the PCA model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Reduction Workflow', 'most_recent', 'pca');
SELECT project, task, algorithm, strategy FROM pyml.deployed_models WHERE project = 'Digits Reduction Workflow';

-- three components now: the same first three
SELECT target, (SELECT array_agg(round(c::numeric, 2) ORDER BY i) FROM unnest(v) WITH ORDINALITY AS u(c, i)) AS pca
FROM (SELECT * FROM pyml.digits ORDER BY image, target LIMIT 3) d,
     pyml.decompose('Digits Reduction Workflow', image) AS v
ORDER BY image, target;

-- deploy the "best" model for prediction use
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Reduction Workflow', 'best_score');
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Reduction Workflow', 'most_recent');
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Reduction Workflow', 'rollback');
SELECT project, strategy, algorithm FROM pyml.deploy('Digits Reduction Workflow', 'best_score', 'pca');

-- a prediction is not what a decomposition gives: refused (22023; the hint names pyml.decompose)
\set VERBOSITY sqlstate
SELECT target, pyml.predict('Digits Reduction Workflow', image) AS prediction
FROM pyml.digits
LIMIT 10;
\set VERBOSITY default

DROP VIEW digit_vectors;
