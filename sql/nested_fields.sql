-- Nested maps are structs: reach into them with ['member'] (or get_field).
-- Lists of maps unnest into rows.
SELECT shipping['state'] AS state,
       shipping['city'] AS city,
       count(*) AS orders,
       round(avg(shipping['geo']['lat']), 2) AS avg_lat
FROM orders
GROUP BY 1, 2
ORDER BY orders DESC, state, city
LIMIT 8;
