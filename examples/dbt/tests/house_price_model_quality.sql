-- The last price model explains most of the variance on its test rows (rows returned fail).
SELECT model_id, metrics ->> 'r2' AS r2
FROM {{ ref('house_price_model') }}
WHERE model_id = (SELECT max(model_id) FROM {{ ref('house_price_model') }})
  AND (metrics ->> 'r2')::float8 < 0.8
