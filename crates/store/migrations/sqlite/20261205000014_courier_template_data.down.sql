ALTER TABLE courier_messages DROP COLUMN template_data;
