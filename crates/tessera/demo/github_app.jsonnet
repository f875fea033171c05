// A GitHub App (`github-app`) → identity traits. The email is the primary address of
// /user/emails, taken only when GitHub verified it (an unverified one would let anyone claim
// someone else's address); the profile name is split at its first space into first and last
// name, and the login goes to metadata_public (it can change; the subject is the numeric id).
local claims = {
  email_verified: false,
} + std.extVar('claims');
local parts = if 'name' in claims then std.splitLimit(claims.name, ' ', 1) else [];
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      [if std.length(parts) > 0 then 'name' else null]: {
        first: parts[0],
        [if std.length(parts) > 1 then 'last' else null]: parts[1],
      },
    },
    metadata_public: {
      github_username: claims.username,
    },
  },
}
