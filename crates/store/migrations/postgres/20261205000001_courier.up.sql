-- The courier's queue (Kratos's courier_messages): every message is rendered and stored before
-- anything is sent, so a crash loses nothing. A worker claims a message by a conditional
-- UPDATE (status and next_attempt_at as it read them) that only one worker can win, moving it
-- to 'processing' with next_attempt_at as the claim's lease; a worker that dies mid-send leaves
-- it 'processing' until the lease runs out, and then any worker takes it again.
-- Times are unix milliseconds. body is the plain text; html_body the HTML alternative.
CREATE TABLE courier_messages (
    id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    type TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    template_type TEXT NOT NULL,
    send_count BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX courier_messages_due ON courier_messages (status, next_attempt_at);
CREATE INDEX courier_messages_recipient ON courier_messages (recipient);
-- One row per delivery attempt (Kratos's courier_message_dispatches).
CREATE TABLE courier_message_dispatches (
    id TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL REFERENCES courier_messages(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX courier_message_dispatches_message ON courier_message_dispatches (message_id);
