{#- Incremental scoring: a condition for the WHERE clause of an incremental model that keeps
    the rows still to score: rows whose key is not in the model's table yet, and rows scored
    by another model than the one predicting now (after a retraining was deployed). Outside
    incremental runs (first run, --full-refresh) it is TRUE: every row is scored.

      {{ config(materialized='incremental', unique_key='id', incremental_strategy='delete+insert') }}
      SELECT h.id,
             {{ pyml.predict(ref('house_price_model'), 'h') }} AS predicted_price,
             {{ pyml.model_id(ref('house_price_model')) }} AS model_id
      FROM {{ ref('new_houses') }} AS h
      WHERE {{ pyml.unscored(ref('house_price_model'), 'h', key='id') }}

    `from_alias` is the alias of the scored relation in the FROM clause; `key` its key column
    (also a column of the incremental model, with the same name); `model_id_column` the
    incremental model's column holding pyml.model_id(...). -#}
{% macro unscored(model, from_alias, key='id', model_id_column='model_id', live=true) -%}
  {%- if is_incremental() -%}
    NOT EXISTS (SELECT 1 FROM {{ this }} AS pyml_scored
                WHERE pyml_scored.{{ pyml._ident(key) }} = {{ from_alias }}.{{ pyml._ident(key) }}
                  AND pyml_scored.{{ pyml._ident(model_id_column) }} = {{ pyml.model_id(model, live) }})
  {%- else -%}
    TRUE
  {%- endif -%}
{%- endmacro %}
