{#- What a pyml_model trains: its configuration checked, normalised, and hashed. The hash
    covers what changes the model (project, task, target, algorithm, hyperparameters, search,
    split, preprocessing) and nothing else: deploy settings and the training relation's kind
    do not retrain. -#}
{% macro _model_spec() %}
  {%- set where = 'pyml_model "' ~ model.name ~ '": ' -%}
  {%- set task = pyml._config('task') -%}
  {%- set tasks = ['regression', 'classification', 'clustering', 'decomposition'] -%}
  {%- if task not in tasks -%}
    {{ exceptions.raise_compiler_error(where ~ '"task" must be one of ' ~ tasks | join(', ') ~ ', got ' ~ task) }}
  {%- endif -%}

  {%- set target = pyml._config('target') -%}
  {%- if target is string -%}
    {%- set target = [target] -%}
  {%- elif target is none -%}
    {%- set target = [] -%}
  {%- else -%}
    {%- set target = target | list -%}
  {%- endif -%}
  {%- if not target and task in ['regression', 'classification'] -%}
    {{ exceptions.raise_compiler_error(where ~ '"target" (the label column, or a list of them) is required for task ' ~ task) }}
  {%- endif -%}
  {%- if target | length > 1 and task != 'regression' -%}
    {{ exceptions.raise_compiler_error(where ~ 'several "target" columns need task regression') }}
  {%- endif -%}

  {%- set automatic_deploy = pyml._config('automatic_deploy') -%}
  {%- set deploy = pyml._config('deploy') -%}
  {%- if deploy is none -%}
    {%- set deploy = 'never' if automatic_deploy is false else 'auto' -%}
  {%- endif -%}
  {%- set strategies = ['auto', 'best_score', 'most_recent', 'never'] -%}
  {%- if deploy not in strategies -%}
    {{ exceptions.raise_compiler_error(where ~ '"deploy" must be one of ' ~ strategies | join(', ') ~ ', got ' ~ deploy) }}
  {%- endif -%}

  {%- set training_materialized = pyml._config('training_materialized', 'table') -%}
  {%- if training_materialized not in ['table', 'view'] -%}
    {{ exceptions.raise_compiler_error(where ~ '"training_materialized" must be table or view, got ' ~ training_materialized) }}
  {%- endif -%}

  {%- set settings = {
      'project': pyml._config('project') or (this.schema ~ '.' ~ this.identifier),
      'task': task,
      'target': target,
      'algorithm': pyml._config('algorithm'),
      'hyperparams': pyml._json_config('hyperparams'),
      'search': pyml._config('search'),
      'search_params': pyml._json_config('search_params'),
      'search_args': pyml._json_config('search_args'),
      'test_size': pyml._config('test_size'),
      'test_sampling': pyml._config('test_sampling'),
      'preprocess': pyml._json_config('preprocess'),
  } -%}
  {{ return({
      'settings': settings,
      'config_hash': local_md5(tojson(settings, sort_keys=true)),
      'deploy': deploy,
      'training_materialized': training_materialized,
  }) }}
{% endmacro %}
