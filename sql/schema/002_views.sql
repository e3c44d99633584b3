-- ============================================================================
-- Views over the registry. security_invoker: a view shows the rows its reader
-- may see (row-level security, sql/wiring/006_privileges.sql), not its owner's.
-- ============================================================================

CREATE VIEW pyml.deployed_models WITH (security_invoker = true) AS
SELECT DISTINCT ON (d.project_id)
    p.name AS project,
    p.task,
    m.algorithm,
    d.model_id,
    d.strategy,
    d.created_at AS deployed_at,
    d.created_by AS deployed_by,
    m.metrics
FROM pyml.deployments d
JOIN pyml.projects p ON p.id = d.project_id
JOIN pyml.models m ON m.id = d.model_id
ORDER BY d.project_id, d.id DESC;

CREATE VIEW pyml.trained_models WITH (security_invoker = true) AS
SELECT
    m.id,
    p.name AS project,
    p.task,
    m.algorithm,
    m.runtime,
    s.relation_name,
    s.y_column_name,
    s.test_sampling,
    s.test_size,
    m.status,
    m.metrics,
    m.created_at,
    m.created_by,
    (live.model_id IS NOT NULL) AS deployed
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
LEFT JOIN pyml.snapshots s ON s.id = m.snapshot_id
LEFT JOIN LATERAL (
    SELECT d.model_id FROM pyml.deployments d
    WHERE d.project_id = m.project_id ORDER BY d.id DESC LIMIT 1
) live ON live.model_id = m.id;

CREATE VIEW pyml.overview WITH (security_invoker = true) AS
SELECT
    d.id AS deployment_id,
    p.name AS project,
    p.task,
    m.algorithm,
    m.runtime,
    d.model_id,
    d.strategy,
    d.created_at AS deployed_at,
    d.created_by AS deployed_by,
    s.relation_name,
    s.y_column_name,
    s.test_sampling,
    s.test_size
FROM pyml.deployments d
JOIN pyml.projects p ON p.id = d.project_id
JOIN pyml.models m ON m.id = d.model_id
LEFT JOIN pyml.snapshots s ON s.id = m.snapshot_id;

COMMENT ON VIEW pyml.deployed_models IS 'The live model of each project (its latest deployment)';
COMMENT ON VIEW pyml.trained_models IS 'One row per model, with whether it is live';
COMMENT ON VIEW pyml.overview IS 'One row per deployment, with its model and training data';
