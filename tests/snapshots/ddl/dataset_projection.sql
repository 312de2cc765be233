CREATE EXTERNAL TABLE IF NOT EXISTS `analytics`.`orders` (
  `order_id` string COMMENT 'attribute orderId',
  `created_at` string COMMENT 'attribute createdAt',
  `customer_id` string COMMENT 'attribute customerId',
  `amount` decimal(18,2) COMMENT 'attribute amount',
  `quantity` bigint COMMENT 'attribute quantity',
  `is_gift` boolean COMMENT 'attribute isGift',
  `notes` string COMMENT 'attribute notes',
  `tags` array<string> COMMENT 'attribute tags, a set',
  `scores` array<decimal(18,2)> COMMENT 'attribute scores, a set',
  `shipping` struct<`street`:string,`city`:string,`state`:string,`zip`:string,`geo`:struct<`lat`:decimal(18,6),`lon`:decimal(18,6)>> COMMENT 'attribute shipping',
  `lines` array<struct<`sku`:string,`qty`:bigint,`price`:decimal(18,2)>> COMMENT 'attribute lines',
  `legacy_code` string COMMENT 'attribute legacyCode',
  `precise` string COMMENT 'attribute precise, exact decimal text',
  `daily_views` map<string,bigint> COMMENT 'attribute dailyViews',
  `payload` string COMMENT 'attribute payload, DynamoDB JSON',
  `thumbnail` binary COMMENT 'attribute thumbnail',
  `attachments` array<binary> COMMENT 'attribute attachments, a set',
  `history` array<string> COMMENT 'attribute history',
  `empty_things` struct<`s`:string,`b`:binary,`m`:map<string,string>> COMMENT 'attribute emptyThings',
  `_extra` string COMMENT 'attributes the schema does not hold, as DynamoDB JSON'
)
PARTITIONED BY (`status` string, `created_at_day` string)
STORED AS PARQUET
LOCATION 's3://lake/orders/'
TBLPROPERTIES (
  'classification'='parquet',
  'projection.enabled'='true',
  'projection.status.type'='enum',
  'projection.status.values'='CANCELLED,DELIVERED,PAID,PENDING,SHIPPED',
  'projection.created_at_day.type'='date',
  'projection.created_at_day.format'='yyyy-MM-dd',
  'projection.created_at_day.range'='2022-06-03,2024-05-31',
  'projection.created_at_day.interval'='1',
  'projection.created_at_day.interval.unit'='DAYS',
  'storage.location.template'='s3://lake/orders/status=${status}/created_at_day=${created_at_day}'
);
