//! The built-in message templates, in English, Simplified Chinese and Russian, written in the
//! same Go-template subset operators override them with (`tessera_core::template`). Kratos's
//! template types and variables: `To`, `VerificationCode`/`RecoveryCode` (code method),
//! `VerificationURL`/`RecoveryURL` (link method), `Identity`, `RequestURL`, `ExpiresInMinutes`.

use std::collections::BTreeMap;
use tessera_config::courier::TemplateOverride;
use tessera_core::template::Template;

/// Kratos's template types that Tessera sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateType {
    VerificationCodeValid,
    VerificationCodeInvalid,
    RecoveryCodeValid,
    RecoveryCodeInvalid,
    /// A verification link (`{{ .VerificationURL }}`), the `link` method.
    VerificationValid,
    /// The link method's "nobody has an account with this address".
    VerificationInvalid,
    /// A recovery link (`{{ .RecoveryURL }}`), the `link` method.
    RecoveryValid,
    /// The link method's "nobody has an account with this address".
    RecoveryInvalid,
    /// A one-time sign-in code (`{{ .LoginCode }}`).
    LoginCodeValid,
    /// A one-time sign-up code (`{{ .RegistrationCode }}`).
    RegistrationCodeValid,
}

impl TemplateType {
    /// Kratos's `template_type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateType::VerificationCodeValid => "verification_code_valid",
            TemplateType::VerificationCodeInvalid => "verification_code_invalid",
            TemplateType::RecoveryCodeValid => "recovery_code_valid",
            TemplateType::RecoveryCodeInvalid => "recovery_code_invalid",
            TemplateType::VerificationValid => "verification_valid",
            TemplateType::VerificationInvalid => "verification_invalid",
            TemplateType::RecoveryValid => "recovery_valid",
            TemplateType::RecoveryInvalid => "recovery_invalid",
            TemplateType::LoginCodeValid => "login_code_valid",
            TemplateType::RegistrationCodeValid => "registration_code_valid",
        }
    }
}

/// The message languages; anything else gets English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
    Ru,
}

impl Lang {
    /// From a language tag such as `zh-CN`, `zh-Hans`, `ru-RU` or `en`.
    pub fn from_tag(tag: &str) -> Lang {
        let primary = tag
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Lang::Zh,
            "ru" => Lang::Ru,
            _ => Lang::En,
        }
    }
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

struct Builtin {
    subject: &'static str,
    text: &'static str,
    /// The HTML body's content, inside the shared frame.
    html: &'static str,
}

fn builtin(t: TemplateType, lang: Lang) -> Builtin {
    use Lang::*;
    use TemplateType::*;
    match (t, lang) {
        // The link method's "unknown address" mails say what the code method's say.
        (VerificationInvalid, l) => builtin(VerificationCodeInvalid, l),
        (RecoveryInvalid, l) => builtin(RecoveryCodeInvalid, l),
        (VerificationValid, En) => Builtin {
            subject: "Please verify your email address",
            text: "Hi,\n\nplease verify your account by opening the following link:\n\n{{ .VerificationURL }}\n\nThe link works once and for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.\n",
            html: "<p>Hi,</p><p>please verify your account by opening the following link:</p><p><a href=\"{{ .VerificationURL }}\">{{ .VerificationURL }}</a></p><p>The link works once and for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.</p>",
        },
        (VerificationValid, Zh) => Builtin {
            subject: "请验证您的邮箱地址",
            text: "您好：\n\n请打开以下链接来验证您的账户：\n\n{{ .VerificationURL }}\n\n链接只能使用一次，{{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件。\n",
            html: "<p>您好：</p><p>请打开以下链接来验证您的账户：</p><p><a href=\"{{ .VerificationURL }}\">{{ .VerificationURL }}</a></p><p>链接只能使用一次，{{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件。</p>",
        },
        (VerificationValid, Ru) => Builtin {
            subject: "Подтвердите адрес электронной почты",
            text: "Здравствуйте!\n\nЧтобы подтвердить учётную запись, откройте эту ссылку:\n\n{{ .VerificationURL }}\n\nСсылка одноразовая и действует {{ .ExpiresInMinutes }} мин. Если вы её не запрашивали, просто проигнорируйте это письмо.\n",
            html: "<p>Здравствуйте!</p><p>Чтобы подтвердить учётную запись, откройте эту ссылку:</p><p><a href=\"{{ .VerificationURL }}\">{{ .VerificationURL }}</a></p><p>Ссылка одноразовая и действует {{ .ExpiresInMinutes }} мин. Если вы её не запрашивали, просто проигнорируйте это письмо.</p>",
        },
        (RecoveryValid, En) => Builtin {
            subject: "Recover access to your account",
            text: "Hi,\n\nplease recover access to your account by opening the following link:\n\n{{ .RecoveryURL }}\n\nThe link works once and for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: your password stays as it is.\n",
            html: "<p>Hi,</p><p>please recover access to your account by opening the following link:</p><p><a href=\"{{ .RecoveryURL }}\">{{ .RecoveryURL }}</a></p><p>The link works once and for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: your password stays as it is.</p>",
        },
        (RecoveryValid, Zh) => Builtin {
            subject: "找回您的账户",
            text: "您好：\n\n请打开以下链接来找回您的账户：\n\n{{ .RecoveryURL }}\n\n链接只能使用一次，{{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，您的密码不会改变。\n",
            html: "<p>您好：</p><p>请打开以下链接来找回您的账户：</p><p><a href=\"{{ .RecoveryURL }}\">{{ .RecoveryURL }}</a></p><p>链接只能使用一次，{{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，您的密码不会改变。</p>",
        },
        (RecoveryValid, Ru) => Builtin {
            subject: "Восстановление доступа к учётной записи",
            text: "Здравствуйте!\n\nЧтобы восстановить доступ к учётной записи, откройте эту ссылку:\n\n{{ .RecoveryURL }}\n\nСсылка одноразовая и действует {{ .ExpiresInMinutes }} мин. Если вы её не запрашивали, проигнорируйте письмо: пароль останется прежним.\n",
            html: "<p>Здравствуйте!</p><p>Чтобы восстановить доступ к учётной записи, откройте эту ссылку:</p><p><a href=\"{{ .RecoveryURL }}\">{{ .RecoveryURL }}</a></p><p>Ссылка одноразовая и действует {{ .ExpiresInMinutes }} мин. Если вы её не запрашивали, проигнорируйте письмо: пароль останется прежним.</p>",
        },
        (VerificationCodeValid, En) => Builtin {
            subject: "Please verify your email address",
            text: "Hi,\n\nplease verify your account by entering the following code:\n\n{{ .VerificationCode }}\n\nThe code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.\n",
            html: "<p>Hi,</p><p>please verify your account by entering the following code:</p><p class=\"code\">{{ .VerificationCode }}</p><p>The code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.</p>",
        },
        (VerificationCodeValid, Zh) => Builtin {
            subject: "请验证您的邮箱地址",
            text: "您好：\n\n请输入以下验证码来验证您的账户：\n\n{{ .VerificationCode }}\n\n验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件。\n",
            html: "<p>您好：</p><p>请输入以下验证码来验证您的账户：</p><p class=\"code\">{{ .VerificationCode }}</p><p>验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件。</p>",
        },
        (VerificationCodeValid, Ru) => Builtin {
            subject: "Подтвердите адрес электронной почты",
            text: "Здравствуйте!\n\nЧтобы подтвердить учётную запись, введите этот код:\n\n{{ .VerificationCode }}\n\nКод действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, просто проигнорируйте это письмо.\n",
            html: "<p>Здравствуйте!</p><p>Чтобы подтвердить учётную запись, введите этот код:</p><p class=\"code\">{{ .VerificationCode }}</p><p>Код действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, просто проигнорируйте это письмо.</p>",
        },
        (VerificationCodeInvalid, En) => Builtin {
            subject: "Someone tried to verify this email address",
            text: "Hi,\n\nsomeone asked to verify this email address, but we were unable to find an account for this address.\n\nIf this was you, check if you signed up using a different address.\n\nIf this was not you, please ignore this email.\n",
            html: "<p>Hi,</p><p>someone asked to verify this email address, but we were unable to find an account for this address.</p><p>If this was you, check if you signed up using a different address. If this was not you, please ignore this email.</p>",
        },
        (VerificationCodeInvalid, Zh) => Builtin {
            subject: "有人尝试验证此邮箱地址",
            text: "您好：\n\n有人请求验证此邮箱地址，但我们没有找到使用该地址的账户。\n\n如果是您本人，请确认注册时是否使用了其他地址；否则请忽略此邮件。\n",
            html: "<p>您好：</p><p>有人请求验证此邮箱地址，但我们没有找到使用该地址的账户。</p><p>如果是您本人，请确认注册时是否使用了其他地址；否则请忽略此邮件。</p>",
        },
        (VerificationCodeInvalid, Ru) => Builtin {
            subject: "Кто-то пытался подтвердить этот адрес",
            text: "Здравствуйте!\n\nКто-то запросил подтверждение этого адреса, но учётной записи с ним нет.\n\nЕсли это были вы, проверьте, не регистрировались ли вы с другим адресом. Если нет, просто проигнорируйте письмо.\n",
            html: "<p>Здравствуйте!</p><p>Кто-то запросил подтверждение этого адреса, но учётной записи с ним нет.</p><p>Если это были вы, проверьте, не регистрировались ли вы с другим адресом. Если нет, просто проигнорируйте письмо.</p>",
        },
        (RecoveryCodeValid, En) => Builtin {
            subject: "Recover access to your account",
            text: "Hi,\n\nplease recover access to your account by entering the following code:\n\n{{ .RecoveryCode }}\n\nThe code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: your password stays as it is.\n",
            html: "<p>Hi,</p><p>please recover access to your account by entering the following code:</p><p class=\"code\">{{ .RecoveryCode }}</p><p>The code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: your password stays as it is.</p>",
        },
        (RecoveryCodeValid, Zh) => Builtin {
            subject: "找回您的账户",
            text: "您好：\n\n请输入以下验证码来找回您的账户：\n\n{{ .RecoveryCode }}\n\n验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，您的密码不会改变。\n",
            html: "<p>您好：</p><p>请输入以下验证码来找回您的账户：</p><p class=\"code\">{{ .RecoveryCode }}</p><p>验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，您的密码不会改变。</p>",
        },
        (RecoveryCodeValid, Ru) => Builtin {
            subject: "Восстановление доступа к учётной записи",
            text: "Здравствуйте!\n\nЧтобы восстановить доступ к учётной записи, введите этот код:\n\n{{ .RecoveryCode }}\n\nКод действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, проигнорируйте письмо: пароль останется прежним.\n",
            html: "<p>Здравствуйте!</p><p>Чтобы восстановить доступ к учётной записи, введите этот код:</p><p class=\"code\">{{ .RecoveryCode }}</p><p>Код действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, проигнорируйте письмо: пароль останется прежним.</p>",
        },
        (RecoveryCodeInvalid, En) => Builtin {
            subject: "Account access attempted",
            text: "Hi,\n\nyou (or someone else) entered this email address when trying to recover access to an account.\n\nHowever, this email address is not on our database of registered users and therefore the attempt has failed.\n\nIf this was you, check if you signed up using a different address. If this was not you, please ignore this email.\n",
            html: "<p>Hi,</p><p>you (or someone else) entered this email address when trying to recover access to an account.</p><p>However, this email address is not on our database of registered users and therefore the attempt has failed.</p><p>If this was you, check if you signed up using a different address. If this was not you, please ignore this email.</p>",
        },
        (RecoveryCodeInvalid, Zh) => Builtin {
            subject: "有人尝试找回账户",
            text: "您好：\n\n有人在找回账户时输入了此邮箱地址，但没有使用该地址注册的账户，因此找回没有成功。\n\n如果是您本人，请确认注册时是否使用了其他地址；否则请忽略此邮件。\n",
            html: "<p>您好：</p><p>有人在找回账户时输入了此邮箱地址，但没有使用该地址注册的账户，因此找回没有成功。</p><p>如果是您本人，请确认注册时是否使用了其他地址；否则请忽略此邮件。</p>",
        },
        (RecoveryCodeInvalid, Ru) => Builtin {
            subject: "Попытка восстановить доступ",
            text: "Здравствуйте!\n\nКто-то (возможно, вы) указал этот адрес, пытаясь восстановить доступ к учётной записи.\n\nУчётной записи с этим адресом нет, поэтому попытка не удалась.\n\nЕсли это были вы, проверьте, не регистрировались ли вы с другим адресом. Если нет, просто проигнорируйте письмо.\n",
            html: "<p>Здравствуйте!</p><p>Кто-то (возможно, вы) указал этот адрес, пытаясь восстановить доступ к учётной записи.</p><p>Учётной записи с этим адресом нет, поэтому попытка не удалась.</p><p>Если это были вы, проверьте, не регистрировались ли вы с другим адресом. Если нет, просто проигнорируйте письмо.</p>",
        },
        (LoginCodeValid, En) => Builtin {
            subject: "Your sign-in code",
            text: "Hi,\n\nplease enter the following code to sign in:\n\n{{ .LoginCode }}\n\nThe code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: nobody can sign in without the code.\n",
            html: "<p>Hi,</p><p>please enter the following code to sign in:</p><p class=\"code\">{{ .LoginCode }}</p><p>The code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: nobody can sign in without the code.</p>",
        },
        (LoginCodeValid, Zh) => Builtin {
            subject: "您的登录验证码",
            text: "您好：\n\n请输入以下验证码登录：\n\n{{ .LoginCode }}\n\n验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，没有验证码任何人都无法登录。\n",
            html: "<p>您好：</p><p>请输入以下验证码登录：</p><p class=\"code\">{{ .LoginCode }}</p><p>验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，没有验证码任何人都无法登录。</p>",
        },
        (LoginCodeValid, Ru) => Builtin {
            subject: "Код для входа",
            text: "Здравствуйте!\n\nЧтобы войти, введите этот код:\n\n{{ .LoginCode }}\n\nКод действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, проигнорируйте письмо: без кода войти никто не сможет.\n",
            html: "<p>Здравствуйте!</p><p>Чтобы войти, введите этот код:</p><p class=\"code\">{{ .LoginCode }}</p><p>Код действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, проигнорируйте письмо: без кода войти никто не сможет.</p>",
        },
        (RegistrationCodeValid, En) => Builtin {
            subject: "Complete your sign-up",
            text: "Hi,\n\nplease enter the following code to complete your sign-up:\n\n{{ .RegistrationCode }}\n\nThe code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: no account is created without the code.\n",
            html: "<p>Hi,</p><p>please enter the following code to complete your sign-up:</p><p class=\"code\">{{ .RegistrationCode }}</p><p>The code is valid for {{ .ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email: no account is created without the code.</p>",
        },
        (RegistrationCodeValid, Zh) => Builtin {
            subject: "完成注册",
            text: "您好：\n\n请输入以下验证码完成注册：\n\n{{ .RegistrationCode }}\n\n验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，没有验证码不会创建任何账户。\n",
            html: "<p>您好：</p><p>请输入以下验证码完成注册：</p><p class=\"code\">{{ .RegistrationCode }}</p><p>验证码在 {{ .ExpiresInMinutes }} 分钟内有效。如果这不是您本人的操作，请忽略此邮件，没有验证码不会创建任何账户。</p>",
        },
        (RegistrationCodeValid, Ru) => Builtin {
            subject: "Завершение регистрации",
            text: "Здравствуйте!\n\nЧтобы завершить регистрацию, введите этот код:\n\n{{ .RegistrationCode }}\n\nКод действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, проигнорируйте письмо: без кода учётная запись не будет создана.\n",
            html: "<p>Здравствуйте!</p><p>Чтобы завершить регистрацию, введите этот код:</p><p class=\"code\">{{ .RegistrationCode }}</p><p>Код действует {{ .ExpiresInMinutes }} мин. Если вы его не запрашивали, проигнорируйте письмо: без кода учётная запись не будет создана.</p>",
        },
    }
}

/// The built-in text message of `t` in `lang`, if `t` is ever sent as one. Short (one SMS
/// segment in the code's language where possible) and with the code first, so a phone's
/// one-time-code autofill finds it.
fn builtin_sms(t: TemplateType, lang: Lang) -> Option<&'static str> {
    use Lang::*;
    use TemplateType::*;
    Some(match (t, lang) {
        (VerificationCodeValid, En) => {
            "{{ .VerificationCode }} is your verification code. It is valid for {{ .ExpiresInMinutes }} minutes."
        }
        (VerificationCodeValid, Zh) => {
            "您的验证码是 {{ .VerificationCode }}，{{ .ExpiresInMinutes }} 分钟内有效。如非本人操作，请忽略。"
        }
        (VerificationCodeValid, Ru) => {
            "Код подтверждения: {{ .VerificationCode }}. Действует {{ .ExpiresInMinutes }} мин."
        }
        (RecoveryCodeValid, En) => {
            "{{ .RecoveryCode }} is your account recovery code. It is valid for {{ .ExpiresInMinutes }} minutes."
        }
        (RecoveryCodeValid, Zh) => {
            "您的账户找回验证码是 {{ .RecoveryCode }}，{{ .ExpiresInMinutes }} 分钟内有效。如非本人操作，请忽略。"
        }
        (RecoveryCodeValid, Ru) => {
            "Код восстановления доступа: {{ .RecoveryCode }}. Действует {{ .ExpiresInMinutes }} мин."
        }
        (LoginCodeValid, En) => {
            "{{ .LoginCode }} is your sign-in code. It is valid for {{ .ExpiresInMinutes }} minutes."
        }
        (LoginCodeValid, Zh) => {
            "您的登录验证码是 {{ .LoginCode }}，{{ .ExpiresInMinutes }} 分钟内有效。如非本人操作，请忽略。"
        }
        (LoginCodeValid, Ru) => {
            "Код для входа: {{ .LoginCode }}. Действует {{ .ExpiresInMinutes }} мин."
        }
        (RegistrationCodeValid, En) => {
            "{{ .RegistrationCode }} is your sign-up code. It is valid for {{ .ExpiresInMinutes }} minutes."
        }
        (RegistrationCodeValid, Zh) => {
            "您的注册验证码是 {{ .RegistrationCode }}，{{ .ExpiresInMinutes }} 分钟内有效。如非本人操作，请忽略。"
        }
        (RegistrationCodeValid, Ru) => {
            "Код для регистрации: {{ .RegistrationCode }}. Действует {{ .ExpiresInMinutes }} мин."
        }
        // Links are emailed only (Kratos's link method has no SMS).
        (
            VerificationCodeInvalid
            | RecoveryCodeInvalid
            | VerificationValid
            | VerificationInvalid
            | RecoveryValid
            | RecoveryInvalid,
            _,
        ) => return None,
    })
}

/// Renders the text message of `t` in `lang` (an operator's `sms.body.plaintext` override
/// first). `None`: `t` is never sent by SMS (a number nobody holds gets no message).
pub fn render_sms(
    t: TemplateType,
    lang: Lang,
    data: &serde_json::Value,
    overrides: &BTreeMap<String, TemplateOverride>,
) -> Option<String> {
    if let Some(o) = overrides.get(t.as_str()).and_then(|o| o.sms.as_ref()) {
        return Some(o.render(data, false).trim().to_string());
    }
    let b = builtin_sms(t, lang)?;
    let parsed = Template::parse(b).unwrap_or_else(|_| Template::literal(b));
    Some(parsed.render(data, false).trim().to_string())
}

/// Kratos's `template_data` for an HTTP channel: the template's variables under their JSON
/// names (`VerificationCode` → `verification_code`, `RequestURL` → `request_url`).
pub fn kratos_template_data(data: &serde_json::Value) -> serde_json::Value {
    let Some(map) = data.as_object() else {
        return data.clone();
    };
    map.iter()
        .map(|(k, v)| (snake(k), v.clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            // A new word starts at an upper-case letter after a lower-case one, or at the last
            // capital of a run followed by a lower-case letter (`RequestURL`, `URLPath`).
            let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            let run_end = i > 0
                && chars[i - 1].is_ascii_uppercase()
                && chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev_lower || run_end {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

fn lang_attr(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Zh => "zh-CN",
        Lang::Ru => "ru",
    }
}

/// Renders `t` in `lang` with `data`, using an operator's override for each part it replaces
/// (overrides are language-independent, as in Kratos).
pub fn render(
    t: TemplateType,
    lang: Lang,
    data: &serde_json::Value,
    overrides: &BTreeMap<String, TemplateOverride>,
) -> Rendered {
    let b = builtin(t, lang);
    let o = overrides.get(t.as_str());
    // The built-ins are constants checked by the tests below; a parse failure cannot happen,
    // and would render the raw text rather than fail a send.
    let parse = |s: &str| Template::parse(s).unwrap_or_else(|_| Template::literal(s));
    let subject = match o.and_then(|o| o.subject.as_ref()) {
        Some(t) => t.render(data, false),
        None => parse(b.subject).render(data, false),
    };
    let text = match o.and_then(|o| o.plaintext.as_ref()) {
        Some(t) => t.render(data, false),
        None => parse(b.text).render(data, false),
    };
    let html = match o.and_then(|o| o.html.as_ref()) {
        Some(t) => t.render(data, true),
        None => format!(
            "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:system-ui,sans-serif;line-height:1.5;color:#1f2328}}.code{{font-size:28px;font-weight:600;letter-spacing:4px}}</style></head><body>{}</body></html>\n",
            lang_attr(lang),
            tessera_core::template::escape_html(subject.trim()),
            parse(b.html).render(data, true)
        ),
    };
    Rendered {
        subject: subject.trim().to_string(),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: [TemplateType; 6] = [
        TemplateType::VerificationCodeValid,
        TemplateType::VerificationCodeInvalid,
        TemplateType::RecoveryCodeValid,
        TemplateType::RecoveryCodeInvalid,
        TemplateType::LoginCodeValid,
        TemplateType::RegistrationCodeValid,
    ];

    #[test]
    fn link_builtins_carry_the_link_in_every_language_and_go_by_email_only() {
        let url = "https://id.example.org/self-service/recovery?flow=f&token=t";
        let data = json!({"VerificationURL": url, "RecoveryURL": url, "ExpiresInMinutes": 60});
        for t in [TemplateType::VerificationValid, TemplateType::RecoveryValid] {
            for lang in [Lang::En, Lang::Zh, Lang::Ru] {
                let b = builtin(t, lang);
                for part in [b.subject, b.text, b.html] {
                    Template::parse(part).unwrap_or_else(|e| panic!("{t:?} {lang:?}: {e}"));
                }
                let r = render(t, lang, &data, &BTreeMap::new());
                assert!(r.text.contains(url), "{t:?} {lang:?}: {}", r.text);
                // In HTML the `&` of the query is escaped, in the text and the href alike.
                assert!(
                    r.html.contains(
                        "href=\"https://id.example.org/self-service/recovery?flow=f&amp;token=t\""
                    ),
                    "{}",
                    r.html
                );
                assert!(render_sms(t, lang, &data, &BTreeMap::new()).is_none());
            }
        }
        for t in [
            TemplateType::VerificationInvalid,
            TemplateType::RecoveryInvalid,
        ] {
            let r = render(t, Lang::Ru, &data, &BTreeMap::new());
            assert!(!r.text.contains(url) && !r.text.is_empty());
        }
        // A Kratos override of `recovery_valid` renders with Kratos's variable.
        let mut o = BTreeMap::new();
        o.insert(
            "recovery_valid".to_string(),
            TemplateOverride {
                plaintext: Some(Template::parse("Reset: {{ .RecoveryURL }}").expect("t")),
                ..TemplateOverride::default()
            },
        );
        let r = render(TemplateType::RecoveryValid, Lang::Zh, &data, &o);
        assert_eq!(r.text, format!("Reset: {url}"));
    }

    #[test]
    fn every_builtin_parses_and_carries_the_code_in_every_language() {
        for t in ALL {
            for lang in [Lang::En, Lang::Zh, Lang::Ru] {
                let b = builtin(t, lang);
                for part in [b.subject, b.text, b.html] {
                    Template::parse(part).unwrap_or_else(|e| panic!("{t:?} {lang:?}: {e}"));
                }
                let r = render(
                    t,
                    lang,
                    &json!({"VerificationCode": "918273", "RecoveryCode": "918273", "LoginCode": "918273", "RegistrationCode": "918273", "ExpiresInMinutes": 60}),
                    &BTreeMap::new(),
                );
                let carries = r.text.contains("918273") && r.html.contains("918273");
                let valid = !matches!(
                    t,
                    TemplateType::VerificationCodeInvalid | TemplateType::RecoveryCodeInvalid
                );
                assert_eq!(carries, valid, "{t:?} {lang:?}");
                assert!(r.html.contains(&format!("lang=\"{}\"", lang_attr(lang))));
            }
        }
        assert_ne!(
            builtin(TemplateType::RecoveryCodeValid, Lang::Zh).subject,
            builtin(TemplateType::RecoveryCodeValid, Lang::En).subject
        );
    }

    #[test]
    fn overrides_replace_only_their_part_and_values_are_escaped_in_html() {
        let mut o = BTreeMap::new();
        o.insert(
            "verification_code_valid".to_string(),
            TemplateOverride {
                html: Some(Template::parse("<b>{{ .VerificationCode }}</b> {{ .To }}").expect("t")),
                ..TemplateOverride::default()
            },
        );
        let r = render(
            TemplateType::VerificationCodeValid,
            Lang::Ru,
            &json!({"VerificationCode": "1", "To": "<x@y>"}),
            &o,
        );
        assert_eq!(r.html, "<b>1</b> &lt;x@y&gt;");
        assert_eq!(r.subject, "Подтвердите адрес электронной почты");
    }

    #[test]
    fn sms_builtins_carry_the_code_in_every_language_and_invalid_ones_are_never_sent() {
        let data = json!({"VerificationCode": "918273", "RecoveryCode": "918273", "LoginCode": "918273", "RegistrationCode": "918273", "ExpiresInMinutes": 15});
        let mut seen = std::collections::BTreeSet::new();
        for t in ALL {
            for lang in [Lang::En, Lang::Zh, Lang::Ru] {
                let sms = render_sms(t, lang, &data, &BTreeMap::new());
                let valid = !matches!(
                    t,
                    TemplateType::VerificationCodeInvalid | TemplateType::RecoveryCodeInvalid
                );
                assert_eq!(sms.is_some(), valid, "{t:?} {lang:?}");
                if let Some(text) = sms {
                    assert!(text.contains("918273") && text.contains("15"), "{text}");
                    assert!(!text.contains("{{"), "{text}");
                    assert!(seen.insert(text));
                }
            }
        }
        let mut o = BTreeMap::new();
        o.insert(
            "verification_code_valid".to_string(),
            TemplateOverride {
                sms: Some(Template::parse("[Acme] {{ .VerificationCode }}").expect("t")),
                ..TemplateOverride::default()
            },
        );
        assert_eq!(
            render_sms(TemplateType::VerificationCodeValid, Lang::Zh, &data, &o).as_deref(),
            Some("[Acme] 918273")
        );
    }

    #[test]
    fn template_data_gets_kratos_json_names() {
        assert_eq!(
            kratos_template_data(
                &json!({"To": "+8613800138000", "VerificationCode": "1", "RequestURL": "u", "ExpiresInMinutes": 5})
            ),
            json!({"to": "+8613800138000", "verification_code": "1", "request_url": "u", "expires_in_minutes": 5})
        );
    }

    #[test]
    fn language_tags_map_to_the_three_languages() {
        assert_eq!(Lang::from_tag("zh-CN"), Lang::Zh);
        assert_eq!(Lang::from_tag("zh_Hans"), Lang::Zh);
        assert_eq!(Lang::from_tag("ru-RU"), Lang::Ru);
        assert_eq!(Lang::from_tag("de"), Lang::En);
        assert_eq!(Lang::from_tag(""), Lang::En);
    }
}
