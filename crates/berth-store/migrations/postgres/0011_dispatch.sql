-- Delivery engine v2: the dispatcher claims in batches and holds claimed jobs in memory, so a claim
-- moves `available_after` to the lease's end and claimed rows leave the due part of the index. One
-- partial index serves every claim: live jobs by due time, with the queue name (fairness skips
-- names) in the index itself. The leased-jobs index of 0007 is no longer read.
-- Keep in step with ../sqlite/0011_dispatch.sql.

DROP INDEX queue_item_leased;
DROP INDEX queue_item_ready;
CREATE INDEX queue_item_due ON queue_item (queue, available_after, id) INCLUDE (name) WHERE retries_remaining > 0;

-- A delivery's payload is kept as the text that was written, as SQLite keeps it: JSONB would
-- reorder its keys, and a retry would send other bytes than the first attempt.
ALTER TABLE delivery ALTER COLUMN body TYPE TEXT USING body::text;

-- Notification jobs queued before this version carry the old job body; give them the shape of
-- the engine's DeliveryTask, with the id of their delivery-log row.
UPDATE queue_item q SET body = jsonb_build_object(
    'log_id', (SELECT d.id FROM delivery d WHERE d.public_id = q.body->>'delivery_id'),
    'delivery_id', q.body->'delivery_id',
    'notification_uuid', q.body->'notification_uuid',
    'event', q.body->'event',
    'payload', jsonb_build_object(
        'event_id', q.body->'event_id',
        'occurred_at', q.body->'occurred_at',
        'event_data', COALESCE(q.body->'event_data', 'null'::jsonb),
        'performer_data', COALESCE(q.body->'performer_data', '{}'::jsonb),
        'test', COALESCE(q.body->'test', 'false'::jsonb)))
WHERE q.queue = 'notification' AND NOT (q.body ? 'payload');
