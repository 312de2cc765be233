-- One row per order line: unnest the `lines` list of maps.
SELECT line['sku'] AS sku, sum(line['qty']) AS units, sum(line['qty'] * line['price']) AS revenue
FROM (SELECT unnest(lines) AS line FROM orders)
GROUP BY 1
ORDER BY revenue DESC, sku
LIMIT 5;
