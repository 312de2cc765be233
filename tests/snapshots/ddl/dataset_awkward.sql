CREATE EXTERNAL TABLE IF NOT EXISTS `select` (
  `order_id` string COMMENT 'attribute orderId',
  `created_at` string COMMENT 'attribute createdAt',
  `customer_id` string COMMENT 'attribute customerId',
  `amount` decimal(18,2) COMMENT 'attribute amount',
  `quantity` bigint COMMENT 'attribute quantity',
  `status` string COMMENT 'attribute status',
  `is_gift` boolean COMMENT 'attribute isGift',
  `notes` string COMMENT 'attribute notes',
  `tags` array<string> COMMENT 'attribute tags, a set',
  `scores` array<decimal(18,2)> COMMENT 'attribute scores, a set',
  `shipping` struct<`street`:string,`city`:string,`state`:string,`zip`:string,`geo`:struct<`lat`:decimal(18,6),`lon`:decimal(18,6)>> COMMENT 'attribute shipping',
  `lines` array<struct<`sku`:string,`qty`:bigint,`price`:decimal(18,2)>> COMMENT 'attribute lines',
  `url` string COMMENT 'attribute URL',
  `ship_to_city` string COMMENT 'attribute ship-to city',
  `gr_e` bigint COMMENT 'attribute größe',
  `select` boolean COMMENT 'attribute select',
  `item_price` decimal(18,1) COMMENT 'attribute item.price',
  `_9lives` bigint COMMENT 'attribute 9lives',
  `a_b` string COMMENT 'attribute a:b',
  `legacy_code` string COMMENT 'attribute legacyCode',
  `url_2` string COMMENT 'attribute Url',
  `daily_views` map<string,bigint> COMMENT 'attribute dailyViews',
  `precise` string COMMENT 'attribute precise, exact decimal text',
  `payload` string COMMENT 'attribute payload, DynamoDB JSON',
  `empty_things` struct<`s`:string,`b`:binary,`m`:map<string,string>> COMMENT 'attribute emptyThings',
  `history` array<string> COMMENT 'attribute history',
  `attachments` array<binary> COMMENT 'attribute attachments, a set',
  `thumbnail` binary COMMENT 'attribute thumbnail',
  `nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn` string COMMENT 'attribute nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...',
  `_extra` string COMMENT 'attributes the schema does not hold, as DynamoDB JSON'
)
STORED AS PARQUET
LOCATION 's3://lake/awkward/'
TBLPROPERTIES (
  'classification'='parquet'
);
