// Feishu / Lark → identity traits. The email is set by the tenant's administrators (Feishu does
// not say it is verified): it is used when there is one, and the person types one otherwise.
// The tenant goes to metadata_public for organization rules.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      [if 'name' in claims then 'name' else null]: { first: claims.name },
    },
    metadata_public: {
      feishu_tenant_key: claims.raw_claims.tenant_key,
      feishu_union_id: claims.raw_claims.union_id,
    },
  },
}
