{#- Prediction in SELECTs. `model` is the ref() of a pyml_model (so the scoring model depends
    on the training in dbt's graph), or a project name (a string) trained outside dbt.
    `features`: a row (a table alias such as 'h': columns matched by name when it has every
    training column), any SQL expression (ROW(...), ARRAY[...]), or a list of SQL expressions
    in training column order (becomes ROW(...)). `live`: true (default) predicts with the
    project's live (deployed) model; false with the model this pyml_model trained last. -#}

{#- The project a pyml_model trained, as SQL: read from its relation when the query runs. -#}
{% macro project(model) -%}
  {%- if model is string -%}
    {{ pyml._literal(model) }}
  {%- else -%}
    (SELECT pyml_trained.project FROM {{ model }} AS pyml_trained ORDER BY pyml_trained.trained_at DESC, pyml_trained.model_id DESC LIMIT 1)
  {%- endif -%}
{%- endmacro %}

{#- The id of the model predictions come from: the live one, or the last trained. -#}
{% macro model_id(model, live=true) -%}
  {%- if live or model is string -%}
    pyml.deployed_model({{ pyml.project(model) }})
  {%- else -%}
    (SELECT pyml_trained.model_id FROM {{ model }} AS pyml_trained ORDER BY pyml_trained.trained_at DESC, pyml_trained.model_id DESC LIMIT 1)
  {%- endif -%}
{%- endmacro %}

{% macro _model_argument(model, live) -%}
  {%- if live or model is string -%}
    {{ pyml.project(model) }}
  {%- else -%}
    {{ pyml.model_id(model, live=false) }}
  {%- endif -%}
{%- endmacro %}

{% macro _features(features) -%}
  {%- if features is string -%}
    {{ features }}
  {%- else -%}
    ROW({{ features | join(', ') }})
  {%- endif -%}
{%- endmacro %}

{#- pyml.predict: a value, or a class label that is a number (true = 1). -#}
{% macro predict(model, features, live=true) -%}
  pyml.predict({{ pyml._model_argument(model, live) }}, {{ pyml._features(features) }})
{%- endmacro %}

{#- pyml.predict_label: the class label as text. -#}
{% macro predict_label(model, features, live=true) -%}
  pyml.predict_label({{ pyml._model_argument(model, live) }}, {{ pyml._features(features) }})
{%- endmacro %}

{#- pyml.predict_proba: the class probabilities (real[]), in pyml.models.classes order. -#}
{% macro predict_proba(model, features, live=true) -%}
  pyml.predict_proba({{ pyml._model_argument(model, live) }}, {{ pyml._features(features) }})
{%- endmacro %}
