// WeCom (企业微信) → identity traits. The email is the member's own address or the corp
// mailbox, set by the corp's administrators (WeCom does not say it is verified): it is used
// when WeCom shares one, and the person types one otherwise. The corp id and the member's
// userid go to metadata_public for organization rules.
local claims = std.extVar('claims');
local raw = claims.raw_claims;
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      [if 'name' in claims then 'name' else null]: { first: claims.name },
    },
    metadata_public: {
      wecom_corpid: raw.corpid,
      wecom_userid: raw.userid,
    },
  },
}
