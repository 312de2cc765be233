-- Compare the raw export (table `orders`) with a converted dataset (table `lake`,
-- partitioned by status): every order must be there, with the same amount.
SELECT l.status,
       count(*) AS orders,
       sum(CASE WHEN l.amount = o.amount THEN 1 ELSE 0 END) AS same_amount
FROM lake l
JOIN orders o ON l.order_id = o.order_id
GROUP BY l.status
ORDER BY l.status;
