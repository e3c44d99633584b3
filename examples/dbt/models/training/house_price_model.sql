-- A regression model of the price. Trained again only when the rows below or this
-- configuration change; its relation records one row per training (model id, fingerprint,
-- metrics, deployed). deploy='most_recent': each new training goes live.
{{ config(
    task='regression',
    target='price',
    algorithm='ridge',
    hyperparams={'alpha': 1.0},
    preprocess={'city': {'encode': 'one_hot'}, 'size': {'scale': 'standard'}},
    test_size=0.25,
    test_sampling='random',
    deploy='most_recent',
) }}

SELECT size, rooms, age, city, price
FROM {{ ref('houses') }}
