-- Every new house scored by the live models. ref() of the training models makes dbt build
-- them first.
SELECT
    h.id,
    {{ pyml.predict(ref('house_price_model'), 'h') }} AS predicted_price,
    {{ pyml.predict_label(ref('house_segment_model'), 'h') }} AS predicted_segment,
    -- classes in pyml.models.classes order: budget, premium
    ({{ pyml.predict_proba(ref('house_segment_model'), 'h') }})[2] AS premium_probability,
    {{ pyml.model_id(ref('house_price_model')) }} AS price_model_id
FROM {{ ref('new_houses') }} AS h
