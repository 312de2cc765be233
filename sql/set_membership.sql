-- String sets (SS) are lists: test membership with array_has, count with cardinality.
SELECT array_has(tags, 'vip') AS vip,
       count(*) AS orders,
       sum(cardinality(tags)) AS tags
FROM orders
WHERE tags IS NOT NULL
GROUP BY 1
ORDER BY 1;
