-- Front-channel logout (OIDC Front-Channel Logout 1.0). `op_session_apps` now also links the
-- apps that only want front-channel logout (an iframe on the signed-out page): `backchannel`
-- says whether ending the session queues a back-channel notice for the link (1 for every row
-- made before, which were all back-channel links).
ALTER TABLE op_session_apps ADD COLUMN backchannel INTEGER NOT NULL DEFAULT 1;
