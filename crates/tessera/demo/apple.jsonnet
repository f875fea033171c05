// Apple → identity traits. The email only when Apple marks it verified (Tessera turns Apple's
// "true"/"false" strings into booleans); it may be a private relay address
// (…@privaterelay.appleid.com), which still reaches the person. The name comes only at the
// first sign-in (Apple sends it once), so it is taken then and kept; a later sign-in without
// it changes nothing. Whether the address is a relay is kept in public metadata.
local claims = {
  email_verified: false,
} + std.extVar('claims');
local raw = std.get(claims, 'raw_claims', {});
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      name: {
        [if 'given_name' in claims then 'first' else null]: claims.given_name,
        [if 'family_name' in claims then 'last' else null]: claims.family_name,
      },
    },
    metadata_public: {
      [if 'is_private_email' in raw then 'apple_private_email' else null]: raw.is_private_email,
    },
  },
}
