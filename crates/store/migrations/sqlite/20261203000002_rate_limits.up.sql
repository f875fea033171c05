-- Counters of failed attempts per key (a hashed identifier, a client address, or both) in fixed
-- windows, shared by every instance on this database. Rows of past windows are deleted by the
-- server's periodic cleanup.
CREATE TABLE rate_limits (
    key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_limits_window ON rate_limits (window_start);
