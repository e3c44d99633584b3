\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Monitoring: drift of new rows from the training rows (pyml.drift), monitoring rounds
-- (pyml.monitor, pyml.check, pyml.run_monitors) with their reports, and the prediction
-- log (pyml.log_predictions). The orders below are made from their row number, so every
-- statistic is reproducible; drift values are rounded.
--

-- orders: price, quantity and colour; the amount is 2 per unit of price, 3 per item,
-- 40 more for red, and a little noise
CREATE FUNCTION monitoring_orders(first int, last int, shift real DEFAULT 0,
                                  red_in_ten int DEFAULT 3, slope real DEFAULT 2)
RETURNS TABLE(price real, qty int, color text, amount real)
LANGUAGE sql IMMUTABLE
AS $$
    SELECT o.price, o.qty, o.color,
           (slope * o.price + 3 * o.qty + CASE o.color WHEN 'red' THEN 40 ELSE 0 END
            + (i * 7919 % 50) / 10.0)::real
    FROM generate_series(first, last) AS i,
    LATERAL (SELECT ((i * 37 % 1000) / 10.0 + shift)::real AS price, i * 13 % 11 AS qty,
                    CASE WHEN i % 10 < red_in_ten THEN 'red'
                         WHEN i % 2 = 0 THEN 'green' ELSE 'blue' END AS color) o
$$;
CREATE TABLE orders_train AS SELECT * FROM monitoring_orders(1, 3000);
CREATE TABLE orders_same AS SELECT * FROM monitoring_orders(3001, 4500);
CREATE TABLE orders_shift AS SELECT * FROM monitoring_orders(4501, 6000, shift => 30, red_in_ten => 7);

SELECT color, count(*), round(avg(price)::numeric, 2) AS price FROM orders_train GROUP BY color ORDER BY color;

SELECT project, task, algorithm, deployed
FROM pyml.train('Orders Monitoring', 'regression', 'orders_train', 'amount', 'lightgbm',
                preprocess => '{"color": {"encode": "native"}}');

--
-- pyml.drift: PSI and KS for numbers, PSI and Jensen-Shannon for categories, and the
-- predictions themselves (__prediction__)
--
-- the same distribution: nothing drifted. (The values of __prediction__ depend on the
-- model's library version: only whether it drifted is shown.)
SELECT feature, metric,
       CASE WHEN feature <> '__prediction__' THEN round(value::numeric, 3) END AS value,
       threshold, drifted
FROM pyml.drift('Orders Monitoring', 'orders_same')
ORDER BY feature, metric;
-- prices up by 30, and 70 % red: price, colour and the predictions drifted
SELECT feature, metric,
       CASE WHEN feature <> '__prediction__' THEN round(value::numeric, 3) END AS value,
       threshold, drifted
FROM pyml.drift('Orders Monitoring', 'orders_shift')
ORDER BY feature, metric;
-- a given model of the project, rather than the live one
SELECT project, task, algorithm, deployed
FROM pyml.train('Orders Monitoring', algorithm => 'linear', automatic_deploy => false);
SELECT feature, metric, drifted
FROM pyml.drift('Orders Monitoring', 'orders_shift',
                (SELECT max(id) FROM pyml.trained_models WHERE project = 'Orders Monitoring'))
WHERE feature = '__prediction__'
ORDER BY metric;

-- drift errors
SELECT * FROM pyml.drift('No Such Project', 'orders_same');
\echo :SQLSTATE
SELECT * FROM pyml.drift('Orders Monitoring', 'no_such_table');
\echo :SQLSTATE
SELECT * FROM pyml.drift('Orders Monitoring', 'orders_same', -1);
\echo :SQLSTATE
SELECT * FROM pyml.drift(NULL, 'orders_same');
\echo :SQLSTATE
CREATE TABLE orders_no_qty AS SELECT price, color FROM orders_same;
SELECT * FROM pyml.drift('Orders Monitoring', 'orders_no_qty');
\echo :SQLSTATE
CREATE TABLE orders_none (LIKE orders_same);
SELECT * FROM pyml.drift('Orders Monitoring', 'orders_none');
\echo :SQLSTATE
-- a model of another project (the message names the model by id: only the SQLSTATE is shown)
SELECT project, task, algorithm, deployed
FROM pyml.train('Orders Monitoring Other', 'regression', 'orders_train', 'amount',
                preprocess => '{"color": {"encode": "native"}}', automatic_deploy => false);
\set VERBOSITY sqlstate
SELECT * FROM pyml.drift('Orders Monitoring', 'orders_same',
                         (SELECT max(id) FROM pyml.trained_models WHERE project = 'Orders Monitoring Other'));
\set VERBOSITY default
-- nothing deployed
SELECT * FROM pyml.drift('Orders Monitoring Other', 'orders_same');
\echo :SQLSTATE

--
-- pyml.check: one monitoring round now. Without a monitor it checks the training relation.
--
SELECT drifted, retrained, deployed, new_model_id IS NULL AS no_candidate
FROM pyml.check('Orders Monitoring');
SELECT decision, relation_name, row_count, psi_threshold, drifted, retrained, deployed
FROM pyml.drift_reports r JOIN pyml.projects p ON p.id = r.project_id
WHERE p.name = 'Orders Monitoring'
ORDER BY r.id;

--
-- pyml.monitor: the relation, interval, threshold and retrain setting of the rounds
--
SELECT pyml.monitor('Orders Monitoring', 'orders_shift', '15 minutes', 0.5, retrain => false) AS monitor_id \gset
SELECT relation_name, every, psi_threshold, retrain FROM pyml.monitors WHERE id = :monitor_id;
-- drifted, but not retrained
SELECT drifted, retrained, deployed, new_model_id IS NULL AS no_candidate
FROM pyml.check('Orders Monitoring');
-- monitoring again replaces the settings (same monitor)
SELECT pyml.monitor('Orders Monitoring', 'orders_same') = :monitor_id AS same_monitor;
SELECT relation_name, every, psi_threshold, retrain FROM pyml.monitors WHERE id = :monitor_id;

-- monitor errors
SELECT pyml.monitor('No Such Project', 'orders_same');
\echo :SQLSTATE
SELECT pyml.monitor('Orders Monitoring', 'no_such_table');
\echo :SQLSTATE
SELECT pyml.monitor('Orders Monitoring', 'orders_same', '0 seconds');
\echo :SQLSTATE
SELECT pyml.monitor('Orders Monitoring', 'orders_same', '-1 hour');
\echo :SQLSTATE
SELECT pyml.monitor('Orders Monitoring', 'orders_same', psi_threshold => 0);
\echo :SQLSTATE
SELECT pyml.monitor('Orders Monitoring', 'orders_same', every => NULL);
\echo :SQLSTATE
SELECT pyml.monitor('Orders Monitoring', NULL);
\echo :SQLSTATE
SELECT pyml.check('No Such Project');
\echo :SQLSTATE
SELECT relation_name, every, psi_threshold, retrain FROM pyml.monitors WHERE id = :monitor_id;

--
-- a round that retrains: new orders follow a new rule (3 per unit of price); the candidate
-- is trained with the live model's settings, and deployed since it does better on its
-- held-out rows
--
CREATE TABLE orders_new_regime AS
SELECT * FROM monitoring_orders(6001, 8000, shift => 30, red_in_ten => 7, slope => 3);
SELECT pyml.monitor('Orders Monitoring', 'orders_new_regime') = :monitor_id AS same_monitor;
SELECT drifted, retrained, deployed, new_model_id > old_model_id AS newer
FROM pyml.check('Orders Monitoring');
SELECT r.decision, r.relation_name, r.row_count, r.holdout_rows, r.metric,
       r.new_score > r.old_score AS better, r.new_score > 0.99 AS new_score_above_099,
       (SELECT array_agg(DISTINCT f->>'feature' ORDER BY f->>'feature')
        FROM jsonb_array_elements(r.features) f WHERE (f->>'drifted')::boolean) AS drifted_features
FROM pyml.drift_reports r JOIN pyml.projects p ON p.id = r.project_id
WHERE p.name = 'Orders Monitoring'
ORDER BY r.id;
SELECT strategy, algorithm FROM pyml.overview WHERE project = 'Orders Monitoring' ORDER BY deployment_id;
-- the new model's lineage records the round and the deployment
SELECT l->'drift_reports'->0->>'decision' AS decision,
       l->'deployments'->0->>'strategy' AS strategy
FROM pyml.lineage(pyml.deployed_model('Orders Monitoring')) AS l;

-- new rows without the label (back to the old prices and colours): drift is measured, the
-- retrain fails, nothing is deployed
CREATE TABLE orders_unlabelled AS SELECT price, qty, color FROM orders_same;
SELECT pyml.monitor('Orders Monitoring', 'orders_unlabelled') = :monitor_id AS same_monitor;
SELECT drifted, retrained, deployed FROM pyml.check('Orders Monitoring');
SELECT pyml.deployed_model('Orders Monitoring') = (SELECT max(id) FROM pyml.trained_models WHERE project = 'Orders Monitoring') AS retrained_model_live;
SELECT decision, detail FROM pyml.drift_reports r JOIN pyml.projects p ON p.id = r.project_id
WHERE p.name = 'Orders Monitoring' ORDER BY r.id DESC LIMIT 1;

-- reports are history
UPDATE pyml.drift_reports SET decision = 'kept';
\echo :SQLSTATE

--
-- pyml.run_monitors: the rounds that are due (what pg_cron or `pyml monitor` calls);
-- a round that fails is reported, the others run
--
-- a monitor set anew is due at once (the one replaced above ran its round just now)
SELECT pyml.unmonitor('Orders Monitoring');
SELECT pyml.monitor('Orders Monitoring', 'orders_new_regime', '1 hour') <> :monitor_id AS new_monitor;
SELECT pyml.monitor('Orders Monitoring Other', 'orders_same') IS NOT NULL AS monitored;
SELECT project, drifted, retrained, deployed, error FROM pyml.run_monitors() ORDER BY project;
-- not due again for an hour
SELECT count(*) AS rounds FROM pyml.run_monitors();
-- unmonitoring stops the rounds, and keeps the reports
SELECT pyml.unmonitor('Orders Monitoring');
SELECT pyml.unmonitor('Orders Monitoring');
SELECT pyml.unmonitor('No Such Project');
\echo :SQLSTATE
SELECT count(*) AS monitors FROM pyml.monitors m JOIN pyml.projects p ON p.id = m.project_id
WHERE p.name = 'Orders Monitoring';

--
-- the prediction log: calls of a project are logged from pyml.log_predictions on, also
-- in a transaction that rolls back
--
SELECT project, task, algorithm, deployed
FROM pyml.train('Orders Logged', 'regression', 'orders_train', 'amount', 'lightgbm',
                preprocess => '{"color": {"encode": "native"}}');
-- nothing logged yet (the message names the live model by id: only the SQLSTATE is shown)
\set VERBOSITY sqlstate
SELECT * FROM pyml.drift('Orders Logged');
\set VERBOSITY default
SELECT pyml.log_predictions('Orders Logged');
SELECT round(pyml.predict('Orders Logged', ROW(50::real, 3, 'red'))::numeric) AS prediction;
BEGIN;
SELECT count(pyml.predict('Orders Logged', o)) AS predictions FROM orders_shift o;
ROLLBACK;
SELECT count(*) AS logged FROM pyml.prediction_log l JOIN pyml.projects p ON p.id = l.project_id
WHERE p.name = 'Orders Logged';
SELECT l.features, round((l.prediction #>> '{}')::numeric) AS prediction,
       l.model_id = pyml.deployed_model('Orders Logged') AS by_live_model
FROM pyml.prediction_log l JOIN pyml.projects p ON p.id = l.project_id
WHERE p.name = 'Orders Logged' AND l.features ? 'f1';
-- the drift of the logged calls (the last day): those of the shifted orders
SELECT feature, metric, round(value::numeric, 3) AS value, drifted
FROM pyml.drift('Orders Logged')
WHERE feature IN ('price', 'color')
ORDER BY feature, metric;
SELECT pyml.collect_predictions() > 0 AS collected;
SELECT count(*) AS logged FROM pyml.logged_predictions l JOIN pyml.projects p ON p.id = l.project_id
WHERE p.name = 'Orders Logged';
-- rate 0 stops logging
SELECT pyml.log_predictions('Orders Logged', 0);
SELECT round(pyml.predict('Orders Logged', ROW(50::real, 3, 'red'))::numeric) AS prediction;
SELECT count(*) AS logged FROM pyml.prediction_log l JOIN pyml.projects p ON p.id = l.project_id
WHERE p.name = 'Orders Logged';
-- log_predictions errors
SELECT pyml.log_predictions('Orders Logged', 1.5);
\echo :SQLSTATE
SELECT pyml.log_predictions('Orders Logged', -0.1);
\echo :SQLSTATE
SELECT pyml.log_predictions('No Such Project');
\echo :SQLSTATE
SELECT pyml.log_predictions(NULL) IS NULL AS strict;

SELECT pyml.delete_project(name, force => true) FROM pyml.projects
WHERE name IN ('Orders Monitoring', 'Orders Monitoring Other', 'Orders Logged') ORDER BY name;
DROP TABLE orders_train, orders_same, orders_shift, orders_no_qty, orders_none, orders_new_regime,
    orders_unlabelled;
DROP FUNCTION monitoring_orders;
