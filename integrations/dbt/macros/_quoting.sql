{#- Quoting for SQL this package renders into model and test text. The materialization binds
    its values instead (adapter.add_query with bindings). dbt's own string_literal and
    adapter.quote do not escape what they wrap, so they are not used for user values. -#}

{#- A string constant: an escape string (E'...'), so that its meaning does not depend on
    standard_conforming_strings; quotes and backslashes doubled. -#}
{% macro _literal(value) -%}
  {%- if value is none -%}
    NULL
  {%- else -%}
    E'{{ (value | string) | replace("\\", "\\\\") | replace("'", "''") }}'
  {%- endif -%}
{%- endmacro %}

{#- An identifier, quoted as PostgreSQL's quote_ident would (double quotes doubled). -#}
{% macro _ident(name) -%}
  "{{ (name | string) | replace('"', '""') }}"
{%- endmacro %}

{#- The name of a relation as pyml resolves it ("schema"."name"): a Relation (ref, source,
    this) without its database part, or a string as given (pyml resolves it like any SQL
    name, never pasting it into SQL). -#}
{% macro _relation_name(relation) -%}
  {%- if relation is string -%}
    {{ relation }}
  {%- else -%}
    {{ relation.include(database=false) }}
  {%- endif -%}
{%- endmacro %}
