{#-
  pyml_model: trains a pyml model on the model's SELECT, only when something changed.

  1. The SELECT is built as the training relation <model>__training (a table, or a view with
     training_materialized='view') in the model's schema.
  2. pyml.fingerprint() gives the fingerprint pyml.train would record for those rows.
  3. The model's own relation (what ref() returns) keeps one row per training: model id,
     project, fingerprint, configuration hash, metrics, deployed. Its last row is compared
     with the fingerprint and the configuration hash now: pyml.train runs only when one of
     them differs, when the last model is gone from pyml's registry, or with --full-refresh.
  4. Every statement binds its values (adapter.add_query with bindings); NOTICEs of the
     training (collected by the connection) and a summary go to dbt's log.
-#}
{% materialization pyml_model, adapter='postgres' %}
  {%- set spec = pyml._model_spec() -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set training_relation = make_intermediate_relation(target_relation, suffix='__training')
        .incorporate(type=spec.training_materialized) -%}
  {%- set training_name = training_relation.include(database=false) | string -%}
  {%- set grant_config = config.get('grants') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- do pyml._build_training_relation(training_relation, sql) -%}

  {%- if existing_relation is not none and existing_relation.type != 'table' -%}
    {%- do adapter.drop_relation(existing_relation) -%}
    {%- set existing_relation = none -%}
  {%- endif -%}
  {%- if existing_relation is none -%}
    {%- do pyml._create_record(target_relation) -%}
    {%- set last = none -%}
  {%- else -%}
    {%- set last = pyml._last_training(target_relation) -%}
  {%- endif -%}

  {%- if flags.EMPTY -%}
    {#- dbt build --empty: the relations exist, with no rows to train on -#}
    {%- do log('pyml: ' ~ model.name ~ ': --empty: not training', info=True) -%}
    {%- do store_raw_result('main', message='NOT TRAINED (--empty)', code='EMPTY', rows_affected=0) -%}
  {%- else -%}
    {%- do pyml._train_if_changed(spec, target_relation, training_name, last) -%}
  {%- endif -%}

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) -%}
  {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}
  {%- do persist_docs(target_relation, model) -%}

  -- `COMMIT` happens here
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- Train when the fingerprint of the training rows or the configuration differ from the last
    training recorded (or with --full-refresh, or when that model was deleted); say why in the
    log either way, with the NOTICEs the training sent. -#}
{% macro _train_if_changed(spec, target_relation, training_name, last) %}
  {%- set settings = spec.settings -%}
  {%- set fingerprinted = pyml._query(
        'SELECT pyml.fingerprint(relation_name => %s, y_column_name => %s::text[],'
        ' task => %s, preprocess => %s::jsonb)',
        [training_name, settings.target, settings.task, tojson(settings.preprocess or {})]) -%}
  {%- set fingerprint = fingerprinted.rows[0][0] -%}
  {%- set reason = pyml._why_train(last, fingerprint, spec.config_hash) -%}
  {%- if not reason -%}
    {%- do log('pyml: ' ~ model.name ~ ': data and configuration unchanged since model ' ~ last.model_id
          ~ ' (fingerprint ' ~ fingerprint[:12] ~ '): not training', info=True) -%}
    {%- do store_raw_result('main', message='UNCHANGED model ' ~ last.model_id, code='UNCHANGED', rows_affected=0) -%}
    {{ return(none) }}
  {%- endif -%}

  {%- do log('pyml: ' ~ model.name ~ ': training project "' ~ settings.project ~ '" (' ~ reason ~ ')', info=True) -%}
  {#- psycopg2 collects the server's NOTICEs on the connection (the last 50): empty the list,
      train, and pass on what came (a driver without that list: nothing to pass on) -#}
  {%- set handle = fingerprinted.connection.handle -%}
  {%- set notices = handle.notices if handle.notices is defined else [] -%}
  {%- do notices.clear() -%}
  {%- do pyml._train(settings, training_name, spec.deploy) -%}
  {%- for notice in notices -%}
    {%- do log(notice.strip(), info=True) -%}
  {%- endfor -%}
  {%- if spec.deploy in ['best_score', 'most_recent'] -%}
    {%- do pyml._query('SELECT model_id FROM pyml.deploy(project_name => %s, strategy => %s)',
                       [settings.project, spec.deploy]) -%}
  {%- endif -%}
  {%- set trained = pyml._record(target_relation, settings, spec.config_hash, training_name) -%}
  {%- if trained.data_fingerprint != fingerprint -%}
    {%- do exceptions.warn('pyml: ' ~ model.name ~ ': the training rows changed while training (fingerprint '
          ~ fingerprint[:12] ~ ' before, ' ~ trained.data_fingerprint[:12] ~ ' recorded)') -%}
  {%- endif -%}
  {%- do log('pyml: ' ~ model.name ~ ': model ' ~ trained.model_id ~ ' (' ~ trained.algorithm ~ ') trained on '
        ~ trained.row_count ~ ' rows of ' ~ training_name ~ ': ' ~ pyml._metrics_text(trained.metrics)
        ~ ('; deployed' if trained.deployed else '; not deployed'), info=True) -%}
  {%- do store_raw_result('main', message='TRAINED model ' ~ trained.model_id, code='TRAINED', rows_affected=1) -%}
{% endmacro %}


{#- The training relation, rebuilt from the SELECT on every run (its rows are what the
    fingerprint is taken of): built under a temporary name, then swapped in. -#}
{% macro _build_training_relation(relation, sql) %}
  {%- set existing = load_cached_relation(relation) -%}
  {%- set intermediate = make_intermediate_relation(relation) -%}
  {%- set backup = make_backup_relation(relation, existing.type if existing is not none else relation.type) -%}
  {%- do drop_relation_if_exists(load_cached_relation(intermediate)) -%}
  {%- do drop_relation_if_exists(load_cached_relation(backup)) -%}
  {% call statement('pyml_training_relation') -%}
    {%- if relation.type == 'view' -%}
      {{ get_create_view_as_sql(intermediate, sql) }}
    {%- else -%}
      {{ get_create_table_as_sql(False, intermediate, sql) }}
    {%- endif -%}
  {%- endcall %}
  {%- if existing is not none -%}
    {%- do adapter.rename_relation(existing, backup) -%}
  {%- endif -%}
  {%- do adapter.rename_relation(intermediate, relation) -%}
  {%- if existing is not none -%}
    {%- do adapter.drop_relation(backup) -%}
  {%- endif -%}
{% endmacro %}


{#- The model's relation: one row per training, never rewritten. -#}
{% macro _create_record(relation) %}
  {% call statement('pyml_create_record') -%}
    CREATE TABLE {{ relation }} (
        model_id bigint NOT NULL,
        project text NOT NULL,
        task text NOT NULL,
        algorithm text NOT NULL,
        data_fingerprint text NOT NULL,
        config_hash text NOT NULL,
        config jsonb NOT NULL,
        training_relation text NOT NULL,
        row_count bigint NOT NULL,
        metrics jsonb,
        deployed boolean NOT NULL,
        trained_at timestamptz NOT NULL,
        dbt_invocation_id text
    )
  {%- endcall %}
{% endmacro %}


{#- The last training recorded, and whether its model is still in pyml's registry. -#}
{% macro _last_training(relation) %}
  {%- set result = pyml._query(
        'SELECT r.model_id, r.data_fingerprint, r.config_hash,'
        ' EXISTS (SELECT 1 FROM pyml.models m WHERE m.id = r.model_id)'
        ' FROM ' ~ relation ~ ' AS r ORDER BY r.trained_at DESC, r.model_id DESC LIMIT 1') -%}
  {%- if not result.rows -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set row = result.rows[0] -%}
  {{ return({'model_id': row[0], 'data_fingerprint': row[1], 'config_hash': row[2], 'exists': row[3]}) }}
{% endmacro %}


{#- Why to train now (empty: no need). -#}
{% macro _why_train(last, fingerprint, config_hash) %}
  {%- if last is none -%}
    {{ return('first training') }}
  {%- elif should_full_refresh() -%}
    {{ return('full refresh') }}
  {%- elif not last.exists -%}
    {{ return('model ' ~ last.model_id ~ ' is no longer in the registry') }}
  {%- elif last.data_fingerprint != fingerprint -%}
    {{ return('the data changed: fingerprint ' ~ last.data_fingerprint[:12] ~ ' -> ' ~ fingerprint[:12]) }}
  {%- elif last.config_hash != config_hash -%}
    {{ return('the configuration changed') }}
  {%- endif -%}
  {{ return('') }}
{% endmacro %}


{#- pyml.train (pyml.train_joint for several targets), every value bound; arguments left
    unset keep pyml's defaults. -#}
{% macro _train(settings, training_name, deploy) %}
  {%- set joint = settings.target | length > 1 -%}
  {%- set arguments = ['project_name => %s', 'task => %s', 'relation_name => %s'] -%}
  {%- set bindings = [settings.project, settings.task, training_name] -%}
  {%- if settings.target -%}
    {%- do arguments.append('y_column_name => %s::text[]' if joint else 'y_column_name => %s') -%}
    {%- do bindings.append(settings.target if joint else settings.target[0]) -%}
  {%- endif -%}
  {%- set optional = [
      ('algorithm', settings.algorithm, ''),
      ('hyperparams', settings.hyperparams, '::jsonb'),
      ('search', settings.search, ''),
      ('search_params', settings.search_params, '::jsonb'),
      ('search_args', settings.search_args, '::jsonb'),
      ('test_size', settings.test_size, '::real'),
      ('test_sampling', settings.test_sampling, ''),
      ('preprocess', settings.preprocess, '::jsonb'),
  ] -%}
  {%- for name, value, cast in optional if value is not none -%}
    {%- do arguments.append(name ~ ' => %s' ~ cast) -%}
    {%- do bindings.append(tojson(value) if cast == '::jsonb' else value) -%}
  {%- endfor -%}
  {#- deploy 'auto' is pyml's automatic deploy; the other strategies deploy afterwards -#}
  {%- do arguments.append('automatic_deploy => %s') -%}
  {%- do bindings.append(deploy == 'auto') -%}
  {%- set function = 'pyml.train_joint' if joint else 'pyml.train' -%}
  {{ return(pyml._query('SELECT * FROM ' ~ function ~ '(' ~ arguments | join(', ') ~ ')', bindings).rows) }}
{% endmacro %}


{#- Record the model just trained (the project's newest): one row, returned as a mapping. -#}
{% macro _record(relation, settings, config_hash, training_name) %}
  {%- set result = pyml._query(
        'INSERT INTO ' ~ relation ~ ' (model_id, project, task, algorithm, data_fingerprint,'
        ' config_hash, config, training_relation, row_count, metrics, deployed, trained_at,'
        ' dbt_invocation_id)'
        ' SELECT m.id, p.name, p.task, m.algorithm, s.data_fingerprint, %s, %s::jsonb, %s,'
        ' s.row_count, m.metrics, m.id IS NOT DISTINCT FROM pyml.deployed_model(p.name, pg_catalog.clock_timestamp()),'
        ' m.created_at, %s'
        ' FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id'
        ' JOIN pyml.snapshots s ON s.id = m.snapshot_id'
        ' WHERE p.name = %s ORDER BY m.id DESC LIMIT 1'
        ' RETURNING model_id, algorithm, data_fingerprint, row_count, metrics::text, deployed',
        [config_hash, tojson(settings, sort_keys=true), training_name, invocation_id,
         settings.project]) -%}
  {%- set row = result.rows[0] -%}
  {{ return({'model_id': row[0], 'algorithm': row[1], 'data_fingerprint': row[2],
             'row_count': row[3], 'metrics': fromjson(row[4]) if row[4] else {},
             'deployed': row[5]}) }}
{% endmacro %}


{#- The metrics a person reads first, as text. -#}
{% macro _metrics_text(metrics) %}
  {%- set shown = [] -%}
  {%- for name in ['r2', 'f1', 'accuracy', 'roc_auc', 'silhouette', 'cumulative_explained_variance', 'mean_absolute_error'] -%}
    {%- if metrics.get(name) is number -%}
      {%- do shown.append(name ~ ' = ' ~ '%.4f' | format(metrics[name])) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(shown | join(', ') if shown else 'no metrics') }}
{% endmacro %}
