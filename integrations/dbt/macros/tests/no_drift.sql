{#- Generic test: fails when pyml.drift flags the rows of the tested relation against the
    training rows of a model; one failing row per drifted (feature, metric).

      seeds:   # or models:, sources: tables
        - name: new_houses
          data_tests:
            - pyml.no_drift:
                pyml_model: ref('house_price_model')   # a pyml_model, or a project name
                # features: [size, city]               # only these (default: every feature)
                # include_prediction: false            # leave __prediction__ out
                # thresholds: {psi: 0.3, ks: 0.15}     # instead of pyml's (psi 0.2, ks 0.1, js 0.1)

    The tested relation is read by pyml.drift as the test's role; a `where` config cannot
    apply (pyml reads the relation itself). -#}
{% test no_drift(model, pyml_model, features=none, include_prediction=true, thresholds=none, live=true) %}
SELECT pyml_drift.feature, pyml_drift.metric, pyml_drift.value, pyml_drift.threshold
FROM (
    SELECT d.feature, d.metric, d.value,
    {%- if thresholds %}
           CASE d.metric
           {%- for metric, limit in thresholds.items() %}
               WHEN {{ pyml._literal(metric) }} THEN {{ pyml._literal(limit) }}::float8
           {%- endfor %}
               ELSE d.threshold
           END AS threshold,
           CASE d.metric
           {%- for metric, limit in thresholds.items() %}
               WHEN {{ pyml._literal(metric) }} THEN d.value > {{ pyml._literal(limit) }}::float8
           {%- endfor %}
               ELSE d.drifted
           END AS drifted
    {%- else %}
           d.threshold, d.drifted
    {%- endif %}
    FROM pyml.drift(
        project_name => {{ pyml.project(pyml_model) }},
        relation_name => {{ pyml._literal(pyml._relation_name(model)) }}
        {%- if not live and pyml_model is not string %},
        model_id => {{ pyml.model_id(pyml_model, live=false) }}
        {%- endif %}
    ) AS d
) AS pyml_drift
WHERE pyml_drift.drifted
{%- if features %}
    AND (pyml_drift.feature IN ({% for feature in features %}{{ pyml._literal(feature) }}{{ ', ' if not loop.last }}{% endfor %})
    {%- if include_prediction %}
         OR left(pyml_drift.feature, 14) = '__prediction__'
    {%- endif %})
{%- elif not include_prediction %}
    AND left(pyml_drift.feature, 14) <> '__prediction__'
{%- endif %}
{% endtest %}
