DROP INDEX IF EXISTS courier_message_dispatches_message;
DROP TABLE IF EXISTS courier_message_dispatches;
DROP INDEX IF EXISTS courier_messages_recipient;
DROP INDEX IF EXISTS courier_messages_due;
DROP TABLE IF EXISTS courier_messages;
