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

COMMENT ON COLUMN pyml.deployed_models.project IS 'Project name';
COMMENT ON COLUMN pyml.deployed_models.task IS
    '''regression'', ''classification'', ''clustering'' or ''decomposition''';
COMMENT ON COLUMN pyml.deployed_models.algorithm IS 'The live model''s algorithm';
COMMENT ON COLUMN pyml.deployed_models.model_id IS 'The live model (pyml.models.id)';
COMMENT ON COLUMN pyml.deployed_models.strategy IS
    '''new_score'', ''best_score'', ''most_recent'', ''rollback'', ''specific'' or ''retrain''';
COMMENT ON COLUMN pyml.deployed_models.deployed_at IS 'When it was deployed';
COMMENT ON COLUMN pyml.deployed_models.deployed_by IS 'The role that deployed it';
COMMENT ON COLUMN pyml.deployed_models.metrics IS
    'Its scores on its test rows (pyml.models.metrics)';

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

COMMENT ON COLUMN pyml.trained_models.id IS 'Model id (pyml.models.id)';
COMMENT ON COLUMN pyml.trained_models.project IS 'Project name';
COMMENT ON COLUMN pyml.trained_models.task IS
    '''regression'', ''classification'', ''clustering'' or ''decomposition''';
COMMENT ON COLUMN pyml.trained_models.algorithm IS 'The algorithm given to pyml.train';
COMMENT ON COLUMN pyml.trained_models.runtime IS 'Always ''python'' (pyml.models.runtime)';
COMMENT ON COLUMN pyml.trained_models.relation_name IS 'The relation it was trained on';
COMMENT ON COLUMN pyml.trained_models.y_column_name IS 'The label column(s)';
COMMENT ON COLUMN pyml.trained_models.test_sampling IS
    'How test rows were chosen: ''random'', ''last'' or ''stratified''';
COMMENT ON COLUMN pyml.trained_models.test_size IS
    'Rows held out for testing: a fraction in (0, 1), or a number of rows (> 1)';
COMMENT ON COLUMN pyml.trained_models.status IS
    '''in_progress'', ''successful'' or ''failed'' (pyml.models.status)';
COMMENT ON COLUMN pyml.trained_models.metrics IS 'Scores on the test rows (pyml.models.metrics)';
COMMENT ON COLUMN pyml.trained_models.created_at IS 'When the model was trained';
COMMENT ON COLUMN pyml.trained_models.created_by IS 'The role that trained it';
COMMENT ON COLUMN pyml.trained_models.deployed IS 'Whether it is the live model of its project';

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

COMMENT ON COLUMN pyml.overview.deployment_id IS 'Deployment id (pyml.deployments.id)';
COMMENT ON COLUMN pyml.overview.project IS 'Project name';
COMMENT ON COLUMN pyml.overview.task IS
    '''regression'', ''classification'', ''clustering'' or ''decomposition''';
COMMENT ON COLUMN pyml.overview.algorithm IS 'The deployed model''s algorithm';
COMMENT ON COLUMN pyml.overview.runtime IS 'Always ''python'' (pyml.models.runtime)';
COMMENT ON COLUMN pyml.overview.model_id IS 'The model deployed (pyml.models.id)';
COMMENT ON COLUMN pyml.overview.strategy IS
    '''new_score'', ''best_score'', ''most_recent'', ''rollback'', ''specific'' or ''retrain''';
COMMENT ON COLUMN pyml.overview.deployed_at IS 'When it was deployed';
COMMENT ON COLUMN pyml.overview.deployed_by IS 'The role that deployed it';
COMMENT ON COLUMN pyml.overview.relation_name IS 'The relation the model was trained on';
COMMENT ON COLUMN pyml.overview.y_column_name IS 'The label column(s)';
COMMENT ON COLUMN pyml.overview.test_sampling IS
    'How test rows were chosen: ''random'', ''last'' or ''stratified''';
COMMENT ON COLUMN pyml.overview.test_size IS
    'Rows held out for testing: a fraction in (0, 1), or a number of rows (> 1)';

COMMENT ON VIEW pyml.deployed_models IS 'The live model of each project (its latest deployment)';
COMMENT ON VIEW pyml.trained_models IS 'One row per model, with whether it is live';
COMMENT ON VIEW pyml.overview IS 'One row per deployment, with its model and training data';
