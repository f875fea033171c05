// DingTalk → identity traits. DingTalk never says whether an email is verified, so the email
// is used only when DingTalk has one; without it the user types one in on the next page.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      [if 'name' in claims then 'name' else null]: { first: claims.name },
    },
    metadata_public: {
      dingtalk_union_id: claims.raw_claims.unionId,
      [if 'corpId' in claims.raw_claims then 'dingtalk_corp_id' else null]: claims.raw_claims.corpId,
    },
  },
}
