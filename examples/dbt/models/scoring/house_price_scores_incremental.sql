-- Incremental scoring: each run scores only the houses not scored yet, and those scored by
-- another model than the live one (after a retraining was deployed).
{{ config(materialized='incremental', unique_key='id', incremental_strategy='delete+insert') }}

SELECT
    h.id,
    {{ pyml.predict(ref('house_price_model'), 'h') }} AS predicted_price,
    {{ pyml.model_id(ref('house_price_model')) }} AS model_id,
    now() AS scored_at
FROM {{ ref('new_houses') }} AS h
WHERE {{ pyml.unscored(ref('house_price_model'), 'h', key='id') }}
