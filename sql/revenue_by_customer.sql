-- Top customers by revenue. `amount` is decimal(38,2): the sums are exact.
SELECT customer_id, count(*) AS orders, sum(amount) AS revenue, max(amount) AS biggest
FROM orders
GROUP BY customer_id
ORDER BY revenue DESC, customer_id
LIMIT 10;
