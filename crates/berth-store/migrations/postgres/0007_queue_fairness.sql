-- Claims skip queue names (a repository's events) that already hold their share of leased jobs;
-- this index finds the leased jobs without scanning the queue.
-- Keep in step with ../sqlite/0007_queue_fairness.sql.

CREATE INDEX queue_item_leased ON queue_item (queue, processing_expires);
