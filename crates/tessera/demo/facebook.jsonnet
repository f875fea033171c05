// Facebook → identity traits. Facebook does not say whether the account's address was
// confirmed, so it becomes the `email` trait (which Tessera's own verification can confirm)
// and never a verified address; first and last name as Facebook splits them; the app-scoped
// Facebook id in metadata_public.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      [if 'given_name' in claims then 'name' else null]: {
        first: claims.given_name,
        [if 'family_name' in claims then 'last' else null]: claims.family_name,
      },
    },
    metadata_public: {
      facebook_id: claims.sub,
    },
  },
}
