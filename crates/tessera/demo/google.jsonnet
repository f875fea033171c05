// Google → identity traits, after Kratos's documented Google mapper: the email only when Google
// marks it verified (`email_verified` is a boolean in Google's id_token; an address Google has
// not verified could be anyone's), the first and last name, and the Workspace domain (`hd`,
// absent for personal accounts) kept in public metadata.
local claims = {
  email_verified: false,
} + std.extVar('claims');
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
      [if 'hd' in claims then 'google_hd' else null]: claims.hd,
    },
  },
}
