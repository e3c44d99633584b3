-- A classifier of the segment (a text label: use predict_label / predict_proba). Deployed
-- when it beats the live model's f1 (pyml's automatic deploy, the default).
{{ config(
    task='classification',
    target='segment',
    algorithm='lightgbm',
    hyperparams={'n_estimators': 30, 'num_leaves': 7},
) }}

SELECT size, rooms, age, city, segment
FROM {{ ref('houses') }}
