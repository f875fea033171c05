-- Kratos's `template_data`: the variables a message was rendered with (JSON), which an HTTP
-- courier channel's Jsonnet body receives as `ctx.template_data` (an SMS provider that sends
-- its own templates needs the code alone, not the rendered text).
ALTER TABLE courier_messages ADD COLUMN template_data TEXT NOT NULL DEFAULT '{}';
