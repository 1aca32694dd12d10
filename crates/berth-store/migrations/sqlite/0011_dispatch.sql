-- Delivery engine v2: the dispatcher claims in batches and holds claimed jobs in memory, so a claim
-- moves `available_after` to the lease's end and claimed rows leave the due part of the index. One
-- partial index serves every claim: live jobs by due time, with the queue name (fairness skips
-- names) in the index itself. The leased-jobs index of 0007 is no longer read.
-- Keep in step with ../postgres/0011_dispatch.sql.

DROP INDEX queue_item_leased;
DROP INDEX queue_item_ready;
CREATE INDEX queue_item_due ON queue_item (queue, available_after, id, name) WHERE retries_remaining > 0;

-- (PostgreSQL turns delivery.body from JSONB into TEXT here; SQLite keeps the written text already.)

-- Notification jobs queued before this version carry the old job body; give them the shape of
-- the engine's DeliveryTask, with the id of their delivery-log row.
UPDATE queue_item SET body = json_object(
    'log_id', (SELECT d.id FROM delivery d WHERE d.public_id = json_extract(queue_item.body, '$.delivery_id')),
    'delivery_id', json_extract(body, '$.delivery_id'),
    'notification_uuid', json_extract(body, '$.notification_uuid'),
    'event', json_extract(body, '$.event'),
    'payload', json_object(
        'event_id', json_extract(body, '$.event_id'),
        'occurred_at', json_extract(body, '$.occurred_at'),
        'event_data', json(COALESCE(body -> '$.event_data', 'null')),
        'performer_data', json(COALESCE(body -> '$.performer_data', '{}')),
        'test', json(COALESCE(body -> '$.test', 'false'))))
WHERE queue = 'notification' AND json_type(body, '$.payload') IS NULL;
