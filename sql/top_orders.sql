-- The ten biggest orders, with the attribute whose type drifts (legacyCode is N or S: kept as text).
SELECT order_id, created_at, status, amount, quantity, legacy_code
FROM orders
ORDER BY amount DESC, order_id
LIMIT 10;
