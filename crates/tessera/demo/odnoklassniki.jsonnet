// OK.ru (Одноклассники) → identity traits: the email when the app has OK's GET_EMAIL
// permission and the person has one (OK sends no verified flag), and the first and last name.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      name: { first: claims.given_name, last: claims.family_name },
    },
  },
}
