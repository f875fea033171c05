// Salesforce → identity traits: the email only when Salesforce marks it verified, the given
// and family names, and the org and user ids in metadata_public (one Salesforce user id is
// unique only within its org, so keep both).
local claims = {
  email_verified: false,
} + std.extVar('claims');
local raw = if 'raw_claims' in claims then claims.raw_claims else {};
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
      [if 'organization_id' in raw then 'salesforce_org_id' else null]: raw.organization_id,
      [if 'user_id' in raw then 'salesforce_user_id' else null]: raw.user_id,
    },
  },
}
