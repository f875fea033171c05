// Microsoft → identity traits. Microsoft sends no `email_verified`; Tessera sets it from the
// optional claim `xms_edov` (the email's domain is verified by the person's directory), so the
// email is taken only then: an unverified `email` can be set by any directory's admin (the
// "nOAuth" takeover). The directory (`tid`) is kept in public metadata.
local claims = {
  email_verified: false,
} + std.extVar('claims');
local raw = std.get(claims, 'raw_claims', {});
local names = std.split(std.get(claims, 'name', ''), ' ');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      name: {
        [if names[0] != '' then 'first' else null]: names[0],
        [if std.length(names) > 1 then 'last' else null]: std.join(' ', names[1:]),
      },
    },
    metadata_public: {
      [if 'tid' in raw then 'microsoft_tenant' else null]: raw.tid,
    },
  },
}
