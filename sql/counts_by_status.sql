-- How many orders are in each status, and what they are worth (exact decimals).
SELECT status, count(*) AS orders, sum(amount) AS revenue
FROM orders
GROUP BY status
ORDER BY status;
