{#- Statements the materialization runs with bound values: adapter.add_query passes the
    bindings to the driver (psycopg2), which quotes them; no value is pasted into SQL text.
    Returns the rows and the connection (its handle collects the server's NOTICEs). -#}
{% macro _query(sql, bindings=[]) %}
  {%- set connection, cursor = adapter.add_query(sql, bindings=bindings) -%}
  {%- set rows = cursor.fetchall() if cursor.description else [] -%}
  {{ return({'rows': rows, 'connection': connection}) }}
{% endmacro %}

{#- One value of a pyml_model's configuration: set in config() / dbt_project.yml, or nested
    under meta: {pyml: {...}} (where newer dbt versions want custom keys). -#}
{% macro _config(name, default=none) %}
  {%- set value = config.get(name) -%}
  {%- if value is none -%}
    {%- set nested = (config.get('meta') or {}).get('pyml') or {} -%}
    {%- set value = nested.get(name) -%}
  {%- endif -%}
  {{ return(default if value is none else value) }}
{% endmacro %}

{#- A JSON object setting (hyperparams, search_params, ...): a mapping, or a string holding
    one (the way pyml.train takes it in SQL). -#}
{% macro _json_config(name) %}
  {%- set value = pyml._config(name) -%}
  {%- if value is string -%}
    {%- set value = fromjson(value) -%}
    {%- if value is none -%}
      {{ exceptions.raise_compiler_error('pyml_model "' ~ model.name ~ '": "' ~ name ~ '" is not valid JSON') }}
    {%- endif -%}
  {%- endif -%}
  {%- if value is not none and value is not mapping -%}
    {{ exceptions.raise_compiler_error('pyml_model "' ~ model.name ~ '": "' ~ name ~ '" must be a mapping, got ' ~ value) }}
  {%- endif -%}
  {{ return(value) }}
{% endmacro %}
