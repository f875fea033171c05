//! The provider-type descriptor: everything Tessera knows about a provider *type* (`github`,
//! `vk`, …) beyond its [`Provider`] implementation, in one table. Configuration checks, the
//! hosted UI (icons, local names, the CSP's `form-action`) and the docs read it; nothing outside
//! this crate matches on provider-type strings.
//!
//! Adding a provider type is one provider file, one emulator and one [`TYPES`] entry (with its
//! icon in `icons/` and its page in `docs/providers/`); the tests below refuse an entry that
//! lacks any of its parts.

use crate::config::ProviderConfig;
use crate::provider::Provider;
use crate::upstream::Upstream;
use std::sync::Arc;

/// Makes a provider from a validated entry; an error names the key at fault and says why.
pub type Make = fn(ProviderConfig, Upstream) -> Result<Arc<dyn Provider>, (String, String)>;

/// A provider type's name in each language of the hosted UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    pub en: &'static str,
    pub zh_cn: &'static str,
    pub ru: &'static str,
}

impl Names {
    /// Whether some language calls the type differently from English (DingTalk is 钉钉 in
    /// Chinese): only then does the UI replace a configured label that is the English name.
    pub fn is_localized(&self) -> bool {
        self.zh_cn != self.en || self.ru != self.en
    }
}

/// One provider type.
#[derive(Debug)]
pub struct ProviderType {
    /// The `provider` value of a configuration entry.
    pub id: &'static str,
    /// Builds a provider of this type.
    pub make: Make,
    /// Origins (`https://host`) the browser is sent to for authorization when the entry sets
    /// no `auth_url`: the hosted UI's CSP `form-action` must allow them, since a social button
    /// answers with a redirect there. Empty when the origin only comes from the configuration
    /// (`generic`'s `issuer_url`).
    pub auth_origins: &'static [&'static str],
    /// The button icon: a small decorative inline SVG (`aria-hidden`), drawn for this project.
    pub icon: &'static str,
    /// The type's name per UI language.
    pub names: Names,
    /// The documentation page, relative to the repository root.
    pub docs: &'static str,
}

const GENERIC_ICON: &str = include_str!("../icons/generic.svg");
/// The icon for a button whose provider is not configured (any more): a key.
pub const DEFAULT_ICON: &str = GENERIC_ICON;
const VK_ICON: &str = include_str!("../icons/vk.svg");
const FEISHU_ICON: &str = include_str!("../icons/feishu.svg");
const LINKEDIN_ICON: &str = include_str!("../icons/linkedin.svg");

/// Every provider type this build knows, in the order error messages list them.
pub static TYPES: &[ProviderType] = &[
    ProviderType {
        id: "generic",
        make: crate::generic::Generic::make,
        auth_origins: &[],
        icon: GENERIC_ICON,
        names: Names {
            en: "OpenID Connect",
            zh_cn: "OpenID Connect",
            ru: "OpenID Connect",
        },
        docs: "docs/social-sign-in.md",
    },
    ProviderType {
        id: "vk",
        make: crate::vk::Vk::make,
        auth_origins: &["https://oauth.vk.com"],
        icon: VK_ICON,
        names: Names {
            en: "VK",
            zh_cn: "VK",
            ru: "VK",
        },
        docs: "docs/providers/vk.md",
    },
    ProviderType {
        id: "vkid",
        make: crate::vkid::VkId::make,
        auth_origins: &["https://id.vk.com"],
        icon: VK_ICON,
        names: Names {
            en: "VK ID",
            zh_cn: "VK ID",
            ru: "VK ID",
        },
        docs: "docs/providers/vkid.md",
    },
    ProviderType {
        id: "github",
        make: crate::github::Github::make,
        auth_origins: &["https://github.com"],
        icon: include_str!("../icons/github.svg"),
        names: Names {
            en: "GitHub",
            zh_cn: "GitHub",
            ru: "GitHub",
        },
        docs: "docs/providers/github.md",
    },
    ProviderType {
        // Kratos's name: a GitHub App rather than an OAuth app.
        id: "github-app",
        make: crate::github::Github::make_app,
        auth_origins: &["https://github.com"],
        icon: include_str!("../icons/github.svg"),
        names: Names {
            en: "GitHub",
            zh_cn: "GitHub",
            ru: "GitHub",
        },
        docs: "docs/providers/github-app.md",
    },
    ProviderType {
        id: "dingtalk",
        make: crate::dingtalk::Dingtalk::make,
        auth_origins: &["https://login.dingtalk.com"],
        icon: include_str!("../icons/dingtalk.svg"),
        names: Names {
            en: "DingTalk",
            zh_cn: "钉钉",
            ru: "DingTalk",
        },
        docs: "docs/providers/dingtalk.md",
    },
    ProviderType {
        id: "yandex",
        make: crate::yandex::Yandex::make,
        auth_origins: &["https://oauth.yandex.ru"],
        icon: include_str!("../icons/yandex.svg"),
        names: Names {
            en: "Yandex ID",
            zh_cn: "Yandex ID",
            ru: "Яндекс ID",
        },
        docs: "docs/providers/yandex.md",
    },
    ProviderType {
        id: "wechat",
        make: crate::wechat::Wechat::make,
        auth_origins: &["https://open.weixin.qq.com"],
        icon: include_str!("../icons/wechat.svg"),
        names: Names {
            en: "WeChat",
            zh_cn: "微信",
            ru: "WeChat",
        },
        docs: "docs/providers/wechat.md",
    },
    ProviderType {
        id: "feishu",
        make: crate::feishu::Feishu::make,
        auth_origins: &[
            "https://accounts.feishu.cn",
            "https://accounts.larksuite.com",
        ],
        icon: FEISHU_ICON,
        names: Names {
            en: "Feishu",
            zh_cn: "飞书",
            ru: "Feishu",
        },
        docs: "docs/providers/feishu.md",
    },
    ProviderType {
        // Kratos's name; the same provider as `feishu`.
        id: "lark",
        make: crate::feishu::Feishu::make,
        auth_origins: &[
            "https://accounts.feishu.cn",
            "https://accounts.larksuite.com",
        ],
        icon: FEISHU_ICON,
        names: Names {
            en: "Lark",
            zh_cn: "飞书",
            ru: "Lark",
        },
        docs: "docs/providers/feishu.md",
    },
    ProviderType {
        id: "qq",
        make: crate::qq::Qq::make,
        auth_origins: &["https://graph.qq.com"],
        icon: include_str!("../icons/qq.svg"),
        names: Names {
            en: "QQ",
            zh_cn: "QQ",
            ru: "QQ",
        },
        docs: "docs/providers/qq.md",
    },
    ProviderType {
        id: "mailru",
        make: crate::mailru::Mailru::make,
        auth_origins: &["https://oauth.mail.ru"],
        icon: include_str!("../icons/mailru.svg"),
        names: Names {
            en: "Mail.ru",
            zh_cn: "Mail.ru",
            ru: "Mail.ru",
        },
        docs: "docs/providers/mailru.md",
    },
    ProviderType {
        id: "wecom",
        make: crate::wecom::Wecom::make,
        auth_origins: &[
            "https://login.work.weixin.qq.com",
            "https://open.weixin.qq.com",
        ],
        icon: include_str!("../icons/wecom.svg"),
        names: Names {
            en: "WeCom",
            zh_cn: "企业微信",
            ru: "WeCom",
        },
        docs: "docs/providers/wecom.md",
    },
    ProviderType {
        id: "odnoklassniki",
        make: crate::odnoklassniki::Odnoklassniki::make,
        auth_origins: &["https://connect.ok.ru"],
        icon: include_str!("../icons/odnoklassniki.svg"),
        names: Names {
            en: "OK",
            zh_cn: "OK",
            ru: "Одноклассники",
        },
        docs: "docs/providers/odnoklassniki.md",
    },
    ProviderType {
        id: "weibo",
        make: crate::weibo::Weibo::make,
        auth_origins: &["https://api.weibo.com"],
        icon: include_str!("../icons/weibo.svg"),
        names: Names {
            en: "Weibo",
            zh_cn: "微博",
            ru: "Weibo",
        },
        docs: "docs/providers/weibo.md",
    },
    ProviderType {
        id: "baidu",
        make: crate::baidu::Baidu::make,
        auth_origins: &["https://openapi.baidu.com"],
        icon: include_str!("../icons/baidu.svg"),
        names: Names {
            en: "Baidu",
            zh_cn: "百度",
            ru: "Baidu",
        },
        docs: "docs/providers/baidu.md",
    },
    ProviderType {
        id: "douyin",
        make: crate::douyin::Douyin::make,
        auth_origins: &["https://open.douyin.com"],
        icon: include_str!("../icons/douyin.svg"),
        names: Names {
            en: "Douyin",
            zh_cn: "抖音",
            ru: "Douyin",
        },
        docs: "docs/providers/douyin.md",
    },
    ProviderType {
        id: "alipay",
        make: crate::alipay::Alipay::make,
        auth_origins: &["https://openauth.alipay.com"],
        icon: include_str!("../icons/alipay.svg"),
        names: Names {
            en: "Alipay",
            zh_cn: "支付宝",
            ru: "Alipay",
        },
        docs: "docs/providers/alipay.md",
    },
    ProviderType {
        id: "telegram_oidc",
        make: crate::telegram_oidc::TelegramOidc::make,
        auth_origins: &["https://oauth.telegram.org"],
        icon: include_str!("../icons/telegram.svg"),
        names: Names {
            en: "Telegram",
            zh_cn: "Telegram",
            ru: "Telegram",
        },
        docs: "docs/providers/telegram_oidc.md",
    },
    ProviderType {
        id: "telegram",
        make: crate::telegram::Telegram::make,
        auth_origins: &["https://oauth.telegram.org"],
        icon: include_str!("../icons/telegram.svg"),
        names: Names {
            en: "Telegram",
            zh_cn: "Telegram",
            ru: "Telegram",
        },
        docs: "docs/providers/telegram.md",
    },
    ProviderType {
        id: "spotify",
        make: crate::spotify::Spotify::make,
        auth_origins: &["https://accounts.spotify.com"],
        icon: include_str!("../icons/spotify.svg"),
        names: Names {
            en: "Spotify",
            zh_cn: "Spotify",
            ru: "Spotify",
        },
        docs: "docs/providers/spotify.md",
    },
    ProviderType {
        id: "naver",
        make: crate::naver::Naver::make,
        auth_origins: &["https://nid.naver.com"],
        icon: include_str!("../icons/naver.svg"),
        names: Names {
            en: "Naver",
            zh_cn: "Naver",
            ru: "Naver",
        },
        docs: "docs/providers/naver.md",
    },
    ProviderType {
        id: "kakao",
        make: crate::kakao::Kakao::make,
        auth_origins: &["https://kauth.kakao.com"],
        icon: include_str!("../icons/kakao.svg"),
        names: Names {
            en: "Kakao",
            zh_cn: "Kakao",
            ru: "Kakao",
        },
        docs: "docs/providers/kakao.md",
    },
    ProviderType {
        id: "bitbucket",
        make: crate::bitbucket::Bitbucket::make,
        auth_origins: &["https://bitbucket.org"],
        icon: include_str!("../icons/bitbucket.svg"),
        names: Names {
            en: "Bitbucket",
            zh_cn: "Bitbucket",
            ru: "Bitbucket",
        },
        docs: "docs/providers/bitbucket.md",
    },
    ProviderType {
        id: "google",
        make: crate::google::Google::make,
        auth_origins: &["https://accounts.google.com"],
        icon: include_str!("../icons/google.svg"),
        names: Names {
            en: "Google",
            zh_cn: "Google",
            ru: "Google",
        },
        docs: "docs/providers/google.md",
    },
    ProviderType {
        id: "discord",
        make: crate::discord::Discord::make,
        auth_origins: &["https://discord.com"],
        icon: include_str!("../icons/discord.svg"),
        names: Names {
            en: "Discord",
            zh_cn: "Discord",
            ru: "Discord",
        },
        docs: "docs/providers/discord.md",
    },
    ProviderType {
        id: "microsoft",
        make: crate::microsoft::Microsoft::make,
        auth_origins: &["https://login.microsoftonline.com"],
        icon: include_str!("../icons/microsoft.svg"),
        names: Names {
            en: "Microsoft",
            zh_cn: "Microsoft",
            ru: "Microsoft",
        },
        docs: "docs/providers/microsoft.md",
    },
    ProviderType {
        id: "apple",
        make: crate::apple::Apple::make,
        auth_origins: &["https://appleid.apple.com"],
        icon: include_str!("../icons/apple.svg"),
        names: Names {
            en: "Apple",
            zh_cn: "Apple",
            ru: "Apple",
        },
        docs: "docs/providers/apple.md",
    },
    ProviderType {
        id: "gitlab",
        make: crate::oidc_preset::gitlab,
        auth_origins: &["https://gitlab.com"],
        icon: include_str!("../icons/gitlab.svg"),
        names: Names {
            en: "GitLab",
            zh_cn: "GitLab",
            ru: "GitLab",
        },
        docs: "docs/providers/gitlab.md",
    },
    ProviderType {
        id: "auth0",
        make: crate::oidc_preset::auth0,
        auth_origins: &[],
        icon: include_str!("../icons/auth0.svg"),
        names: Names {
            en: "Auth0",
            zh_cn: "Auth0",
            ru: "Auth0",
        },
        docs: "docs/providers/auth0.md",
    },
    ProviderType {
        id: "slack",
        make: crate::oidc_preset::slack,
        auth_origins: &["https://slack.com"],
        icon: include_str!("../icons/slack.svg"),
        names: Names {
            en: "Slack",
            zh_cn: "Slack",
            ru: "Slack",
        },
        docs: "docs/providers/slack.md",
    },
    ProviderType {
        id: "linkedin_v2",
        make: crate::oidc_preset::linkedin,
        auth_origins: &["https://www.linkedin.com"],
        icon: LINKEDIN_ICON,
        names: Names {
            en: "LinkedIn",
            zh_cn: "领英",
            ru: "LinkedIn",
        },
        docs: "docs/providers/linkedin.md",
    },
    // Kratos's older name; LinkedIn retired the profile API it used, so it signs in the
    // same OpenID Connect way as `linkedin_v2`.
    ProviderType {
        id: "linkedin",
        make: crate::oidc_preset::linkedin,
        auth_origins: &["https://www.linkedin.com"],
        icon: LINKEDIN_ICON,
        names: Names {
            en: "LinkedIn",
            zh_cn: "领英",
            ru: "LinkedIn",
        },
        docs: "docs/providers/linkedin.md",
    },
    ProviderType {
        id: "salesforce",
        make: crate::oidc_preset::salesforce,
        auth_origins: &["https://login.salesforce.com"],
        icon: include_str!("../icons/salesforce.svg"),
        names: Names {
            en: "Salesforce",
            zh_cn: "Salesforce",
            ru: "Salesforce",
        },
        docs: "docs/providers/salesforce.md",
    },
    ProviderType {
        id: "netid",
        make: crate::oidc_preset::netid,
        auth_origins: &["https://broker.netid.de"],
        icon: include_str!("../icons/netid.svg"),
        names: Names {
            en: "netID",
            zh_cn: "netID",
            ru: "netID",
        },
        docs: "docs/providers/netid.md",
    },
    ProviderType {
        id: "patreon",
        make: crate::patreon::Patreon::make,
        auth_origins: &["https://www.patreon.com"],
        icon: include_str!("../icons/patreon.svg"),
        names: Names {
            en: "Patreon",
            zh_cn: "Patreon",
            ru: "Patreon",
        },
        docs: "docs/providers/patreon.md",
    },
    ProviderType {
        id: "uaepass",
        make: crate::uaepass::UaePass::make,
        auth_origins: &["https://id.uaepass.ae", "https://stg-id.uaepass.ae"],
        icon: include_str!("../icons/uaepass.svg"),
        names: Names {
            en: "UAE PASS",
            zh_cn: "UAE PASS",
            ru: "UAE PASS",
        },
        docs: "docs/providers/uaepass.md",
    },
    ProviderType {
        id: "facebook",
        make: crate::facebook::Facebook::make,
        auth_origins: &["https://www.facebook.com"],
        icon: include_str!("../icons/facebook.svg"),
        names: Names {
            en: "Facebook",
            zh_cn: "Facebook",
            ru: "Facebook",
        },
        docs: "docs/providers/facebook.md",
    },
    ProviderType {
        id: "x",
        make: crate::x::X::make,
        auth_origins: &["https://x.com"],
        icon: include_str!("../icons/x.svg"),
        names: Names {
            en: "X",
            zh_cn: "X",
            ru: "X",
        },
        docs: "docs/providers/x.md",
    },
    ProviderType {
        id: "amazon",
        make: crate::amazon::Amazon::make,
        auth_origins: &["https://www.amazon.com"],
        icon: include_str!("../icons/amazon.svg"),
        names: Names {
            en: "Amazon",
            zh_cn: "Amazon",
            ru: "Amazon",
        },
        docs: "docs/providers/amazon.md",
    },
    ProviderType {
        id: "line",
        make: crate::line::Line::make,
        auth_origins: &["https://access.line.me"],
        icon: include_str!("../icons/line.svg"),
        names: Names {
            en: "LINE",
            zh_cn: "LINE",
            ru: "LINE",
        },
        docs: "docs/providers/line.md",
    },
    ProviderType {
        id: "twitch",
        make: crate::twitch::Twitch::make,
        auth_origins: &["https://id.twitch.tv"],
        icon: include_str!("../icons/twitch.svg"),
        names: Names {
            en: "Twitch",
            zh_cn: "Twitch",
            ru: "Twitch",
        },
        docs: "docs/providers/twitch.md",
    },
];

/// The type with this id.
pub fn get(id: &str) -> Option<&'static ProviderType> {
    TYPES.iter().find(|t| t.id == id)
}

/// The ids of every type, for messages ("this version supports: …").
pub fn ids() -> Vec<&'static str> {
    TYPES.iter().map(|t| t.id).collect()
}

/// The origin (`scheme://host[:port]`) of a URL; `None` for what has no tuple origin.
pub fn origin_of(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    match u.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::Path;

    fn repo_root() -> &'static Path {
        // crates/social → the workspace root.
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    #[test]
    fn every_entry_is_complete() {
        let mut ids = HashSet::new();
        for t in TYPES {
            let id = t.id;
            assert!(ids.insert(id), "duplicate provider type `{id}`");
            assert!(
                !id.is_empty()
                    && id.chars().all(|c| c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '_'
                        || c == '-'),
                "`{id}`: ids are lowercase letters, digits, `_` and `-` (`telegram_oidc`, Kratos's `github-app`)"
            );
            for (lang, name) in [
                ("en", t.names.en),
                ("zh-CN", t.names.zh_cn),
                ("ru", t.names.ru),
            ] {
                assert!(!name.trim().is_empty(), "`{id}`: no {lang} name");
            }
            let icon = t.icon.trim();
            assert!(
                icon.starts_with("<svg") && icon.ends_with("</svg>"),
                "`{id}`: icon"
            );
            assert!(icon.contains("aria-hidden=\"true\""), "`{id}`: icon");
            // The hosted pages' CSP: no inline style and no script inside the markup.
            assert!(
                !icon.contains("style") && !icon.contains("<script"),
                "`{id}`: icon"
            );
            for o in t.auth_origins {
                assert!(o.starts_with("https://"), "`{id}`: `{o}` is not https");
                assert_eq!(
                    origin_of(o).as_deref(),
                    Some(*o),
                    "`{id}`: `{o}` is not a bare origin"
                );
            }
            assert!(
                repo_root().join(t.docs).is_file(),
                "`{id}`: no documentation page {}",
                t.docs
            );
        }
    }

    #[test]
    fn the_docs_list_every_type() {
        let path = repo_root().join("docs/social-sign-in.md");
        let doc = std::fs::read_to_string(&path).expect("docs/social-sign-in.md");
        let row = doc
            .lines()
            .find(|l| l.starts_with("| `provider` |"))
            .expect("the `provider` row of the provider keys table");
        let listed: HashSet<&str> = row.split('`').skip(3).step_by(2).collect::<HashSet<_>>();
        let known: HashSet<&str> = ids().into_iter().collect();
        assert_eq!(listed, known, "docs/social-sign-in.md: {row}");
    }

    #[test]
    fn every_type_makes_a_provider_from_a_minimal_entry() {
        for t in TYPES {
            // Alipay's secret is the app's RSA private key, checked at start.
            // The Telegram widget's is the bot token, of the bot `client_id` names.
            let secret = match t.id {
                "alipay" => include_str!("../testdata/alipay_app_private_key.pem"),
                "telegram" => "1234567:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
                _ => "s",
            };
            let cfg: ProviderConfig = serde_json::from_value(serde_json::json!({
                "id": "x", "provider": t.id, "client_id": "1234567", "client_secret": secret,
                "issuer_url": "https://issuer.example",
                // The types that need more than a client id and secret.
                "wecom_agent_id": "1000002",
                "odnoklassniki_application_key": "CBAFJIICABABABABA",
                "alipay_public_key": include_str!("../testdata/alipay_public_key.pem"),
                "microsoft_tenant": "common",
            }))
            .expect("a valid entry");
            assert!(
                (t.make)(cfg, Upstream::new().expect("an HTTP client")).is_ok(),
                "`{}`",
                t.id
            );
        }
        assert!(get("github").is_some_and(|t| t.id == "github"));
        assert!(get("nope").is_none());
    }
}
