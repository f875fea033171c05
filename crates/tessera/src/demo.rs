//! `tessera demo`: the whole product on one machine, offline. The server runs with a generated
//! configuration in which DingTalk, WeChat, WeCom, Feishu, QQ, Weibo, Baidu, Douyin, Alipay,
//! Telegram (OpenID Connect and the Login Widget), VK, VK ID, GitHub, a GitHub App, Google, Discord,
//! Microsoft, Apple, GitLab, Auth0, Slack, LinkedIn, Spotify, Naver, Kakao, Bitbucket, Salesforce, netID, Patreon, UAE PASS,
//! Facebook, Amazon, X, LINE, Twitch, Yandex ID, Mail.ru and OK sign-in go to emulators of those providers, started in the same process
//! (`tessera-emulators`), each with a consent page listing a few fake people.
//!
//! Everything lives in one folder (`./tessera-demo` by default): the configuration, the
//! Jsonnet mappers (the seed mappers, yours to edit), the SQLite database and the secret. The
//! configuration is regenerated at each start because the emulators' ports change; the
//! database, the mappers and the secret are kept.

use crate::serve;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tessera_emulators::alipay::AlipayEmulator;
use tessera_emulators::amazon::AmazonEmulator;
use tessera_emulators::apple::AppleEmulator;
use tessera_emulators::baidu::BaiduEmulator;
use tessera_emulators::bitbucket::BitbucketEmulator;
use tessera_emulators::dingtalk::DingtalkEmulator;
use tessera_emulators::discord::DiscordEmulator;
use tessera_emulators::douyin::DouyinEmulator;
use tessera_emulators::facebook::FacebookEmulator;
use tessera_emulators::feishu::FeishuEmulator;
use tessera_emulators::github::GithubEmulator;
use tessera_emulators::google::GoogleEmulator;
use tessera_emulators::kakao::KakaoEmulator;
use tessera_emulators::line::LineEmulator;
use tessera_emulators::mailru::MailruEmulator;
use tessera_emulators::microsoft::MicrosoftEmulator;
use tessera_emulators::naver::NaverEmulator;
use tessera_emulators::odnoklassniki::OkEmulator;
use tessera_emulators::oidc_preset::{Kind, PresetEmulator};
use tessera_emulators::outbox::Outbox;
use tessera_emulators::patreon::PatreonEmulator;
use tessera_emulators::qq::QqEmulator;
use tessera_emulators::sample_app::{self, SampleApp};
use tessera_emulators::spotify::SpotifyEmulator;
use tessera_emulators::telegram::TelegramWidgetEmulator;
use tessera_emulators::telegram_oidc::TelegramOidcEmulator;
use tessera_emulators::twitch::TwitchEmulator;
use tessera_emulators::uaepass::UaePassEmulator;
use tessera_emulators::vk::VkEmulator;
use tessera_emulators::vkid::VkIdEmulator;
use tessera_emulators::wechat::WechatEmulator;
use tessera_emulators::wecom::WecomEmulator;
use tessera_emulators::weibo::WeiboEmulator;
use tessera_emulators::x::XEmulator;
use tessera_emulators::yandex::YandexEmulator;
use tessera_server::Listeners;

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the demo's configuration, mappers, database and secret.
    #[arg(long, default_value = "tessera-demo")]
    dir: PathBuf,
    /// Address to listen on. The demo is plain HTTP; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Public API and sign-in pages port (0 picks a free one).
    #[arg(long, default_value_t = 4433)]
    port: u16,
    /// Admin API port (0 picks a free one).
    #[arg(long, default_value_t = 4434)]
    admin_port: u16,
}

/// The seed mappers, written into the demo folder unless a file of that name is there already.
const MAPPERS: &[(&str, &str)] = &[
    ("dingtalk.jsonnet", include_str!("../demo/dingtalk.jsonnet")),
    ("vk.jsonnet", include_str!("../demo/vk.jsonnet")),
    ("github.jsonnet", include_str!("../demo/github.jsonnet")),
    (
        "github_app.jsonnet",
        include_str!("../demo/github_app.jsonnet"),
    ),
    ("google.jsonnet", include_str!("../demo/google.jsonnet")),
    ("discord.jsonnet", include_str!("../demo/discord.jsonnet")),
    ("apple.jsonnet", include_str!("../demo/apple.jsonnet")),
    (
        "oidc_standard.jsonnet",
        include_str!("../demo/oidc_standard.jsonnet"),
    ),
    (
        "microsoft.jsonnet",
        include_str!("../demo/microsoft.jsonnet"),
    ),
    ("yandex.jsonnet", include_str!("../demo/yandex.jsonnet")),
    ("wechat.jsonnet", include_str!("../demo/wechat.jsonnet")),
    ("feishu.jsonnet", include_str!("../demo/feishu.jsonnet")),
    ("qq.jsonnet", include_str!("../demo/qq.jsonnet")),
    ("mailru.jsonnet", include_str!("../demo/mailru.jsonnet")),
    ("wecom.jsonnet", include_str!("../demo/wecom.jsonnet")),
    (
        "odnoklassniki.jsonnet",
        include_str!("../demo/odnoklassniki.jsonnet"),
    ),
    ("weibo.jsonnet", include_str!("../demo/weibo.jsonnet")),
    ("baidu.jsonnet", include_str!("../demo/baidu.jsonnet")),
    ("douyin.jsonnet", include_str!("../demo/douyin.jsonnet")),
    ("alipay.jsonnet", include_str!("../demo/alipay.jsonnet")),
    (
        "telegram_oidc.jsonnet",
        include_str!("../demo/telegram_oidc.jsonnet"),
    ),
    ("telegram.jsonnet", include_str!("../demo/telegram.jsonnet")),
    ("spotify.jsonnet", include_str!("../demo/spotify.jsonnet")),
    ("naver.jsonnet", include_str!("../demo/naver.jsonnet")),
    ("kakao.jsonnet", include_str!("../demo/kakao.jsonnet")),
    (
        "bitbucket.jsonnet",
        include_str!("../demo/bitbucket.jsonnet"),
    ),
    ("uaepass.jsonnet", include_str!("../demo/uaepass.jsonnet")),
    ("patreon.jsonnet", include_str!("../demo/patreon.jsonnet")),
    (
        "salesforce.jsonnet",
        include_str!("../demo/salesforce.jsonnet"),
    ),
    ("facebook.jsonnet", include_str!("../demo/facebook.jsonnet")),
    ("amazon.jsonnet", include_str!("../demo/amazon.jsonnet")),
    ("x.jsonnet", include_str!("../demo/x.jsonnet")),
    ("line.jsonnet", include_str!("../demo/line.jsonnet")),
    ("twitch.jsonnet", include_str!("../demo/twitch.jsonnet")),
];

struct Emulators {
    dingtalk: DingtalkEmulator,
    vk: VkEmulator,
    vkid: VkIdEmulator,
    github: GithubEmulator,
    github_app: GithubEmulator,
    google: GoogleEmulator,
    discord: DiscordEmulator,
    microsoft: MicrosoftEmulator,
    apple: AppleEmulator,
    /// GitLab, Auth0, Slack and LinkedIn, in that order.
    presets: [(&'static str, PresetEmulator); 4],
    yandex: YandexEmulator,
    wechat: WechatEmulator,
    feishu: FeishuEmulator,
    qq: QqEmulator,
    mailru: MailruEmulator,
    wecom: WecomEmulator,
    ok: OkEmulator,
    weibo: WeiboEmulator,
    baidu: BaiduEmulator,
    douyin: DouyinEmulator,
    alipay: AlipayEmulator,
    telegram: TelegramOidcEmulator,
    telegram_widget: TelegramWidgetEmulator,
    spotify: SpotifyEmulator,
    naver: NaverEmulator,
    kakao: KakaoEmulator,
    bitbucket: BitbucketEmulator,
    uaepass: UaePassEmulator,
    patreon: PatreonEmulator,
    netid: PresetEmulator,
    salesforce: PresetEmulator,
    facebook: FacebookEmulator,
    amazon: AmazonEmulator,
    x: XEmulator,
    line: LineEmulator,
    twitch: TwitchEmulator,
    /// The mail and SMS catchers, and the page listing what was sent.
    outbox: Outbox,
}

async fn loopback() -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind a loopback port for an emulator")
}

impl Emulators {
    async fn start() -> Result<Emulators> {
        Ok(Emulators {
            dingtalk: DingtalkEmulator::serve(loopback().await?)?,
            vk: VkEmulator::serve(loopback().await?)?,
            vkid: VkIdEmulator::serve(loopback().await?)?,
            github: GithubEmulator::serve(loopback().await?)?,
            github_app: GithubEmulator::serve_app(loopback().await?)?,
            google: GoogleEmulator::serve(loopback().await?)?,
            discord: DiscordEmulator::serve(loopback().await?)?,
            microsoft: MicrosoftEmulator::serve(loopback().await?)?,
            apple: AppleEmulator::serve(loopback().await?)?,
            presets: [
                (
                    "gitlab",
                    PresetEmulator::serve(Kind::Gitlab, loopback().await?)?,
                ),
                (
                    "auth0",
                    PresetEmulator::serve(Kind::Auth0, loopback().await?)?,
                ),
                (
                    "slack",
                    PresetEmulator::serve(Kind::Slack, loopback().await?)?,
                ),
                (
                    "linkedin",
                    PresetEmulator::serve(Kind::Linkedin, loopback().await?)?,
                ),
            ],
            yandex: YandexEmulator::serve(loopback().await?)?,
            wechat: WechatEmulator::serve(loopback().await?)?,
            feishu: FeishuEmulator::serve(loopback().await?)?,
            qq: QqEmulator::serve(loopback().await?)?,
            mailru: MailruEmulator::serve(loopback().await?)?,
            wecom: {
                // An app created before 2022-06-20: its contact API still shares the corp
                // mailbox, so web login signs 张三 in without the email form.
                let w = WecomEmulator::serve(loopback().await?)?;
                w.set_legacy_app(true);
                w
            },
            ok: OkEmulator::serve(loopback().await?)?,
            weibo: WeiboEmulator::serve(loopback().await?)?,
            baidu: BaiduEmulator::serve(loopback().await?)?,
            douyin: DouyinEmulator::serve(loopback().await?)?,
            alipay: AlipayEmulator::serve(loopback().await?)?,
            telegram: TelegramOidcEmulator::serve(loopback().await?)?,
            telegram_widget: TelegramWidgetEmulator::serve(loopback().await?)?,
            spotify: SpotifyEmulator::serve(loopback().await?)?,
            naver: NaverEmulator::serve(loopback().await?)?,
            kakao: KakaoEmulator::serve(loopback().await?)?,
            bitbucket: BitbucketEmulator::serve(loopback().await?)?,
            uaepass: UaePassEmulator::serve(loopback().await?)?,
            patreon: PatreonEmulator::serve(loopback().await?)?,
            netid: PresetEmulator::serve(Kind::Netid, loopback().await?)?,
            salesforce: PresetEmulator::serve(Kind::Salesforce, loopback().await?)?,
            facebook: FacebookEmulator::serve(loopback().await?)?,
            amazon: AmazonEmulator::serve(loopback().await?)?,
            x: XEmulator::serve(loopback().await?)?,
            line: LineEmulator::serve(loopback().await?)?,
            twitch: TwitchEmulator::serve(loopback().await?)?,
            outbox: Outbox::start().await,
        })
    }

    fn register_callbacks(&self, public: &str) {
        let cb = |id: &str| format!("{public}/self-service/methods/oidc/callback/{id}");
        self.dingtalk.register_redirect_uri(cb("dingtalk"));
        self.vk.register_redirect_uri(&cb("vk"));
        self.vkid.register_redirect_uri(&cb("vkid"));
        self.github.register_redirect_uri(cb("github"));
        self.github_app.register_redirect_uri(cb("github-app"));
        self.google.register_redirect_uri(cb("google"));
        self.discord.register_redirect_uri(cb("discord"));
        self.microsoft.register_redirect_uri(cb("microsoft"));
        self.apple.register_redirect_uri(cb("apple"));
        for (id, e) in &self.presets {
            e.register_redirect_uri(cb(id));
        }
        self.yandex.register_redirect_uri(cb("yandex"));
        self.wechat.register_redirect_uri(cb("wechat"));
        self.feishu.register_redirect_uri(cb("feishu"));
        self.qq.register_redirect_uri(cb("qq"));
        self.mailru.register_redirect_uri(cb("mailru"));
        self.wecom.register_redirect_uri(cb("wecom"));
        self.ok.register_redirect_uri(cb("odnoklassniki"));
        self.weibo.register_redirect_uri(cb("weibo"));
        self.baidu.register_redirect_uri(cb("baidu"));
        self.douyin.register_redirect_uri(cb("douyin"));
        self.alipay.register_redirect_uri(cb("alipay"));
        self.telegram.register_redirect_uri(cb("telegram"));
        // The Login Widget's bot is linked to a domain (BotFather's /setdomain), not a URL.
        self.telegram_widget.set_domain(public);
        self.spotify.register_redirect_uri(cb("spotify"));
        self.naver.register_redirect_uri(cb("naver"));
        self.kakao.register_redirect_uri(cb("kakao"));
        self.bitbucket.register_redirect_uri(cb("bitbucket"));
        self.uaepass.register_redirect_uri(cb("uaepass"));
        self.patreon.register_redirect_uri(cb("patreon"));
        self.netid.register_redirect_uri(cb("netid"));
        self.salesforce.register_redirect_uri(cb("salesforce"));
        self.facebook.register_redirect_uri(cb("facebook"));
        self.amazon.register_redirect_uri(cb("amazon"));
        self.x.register_redirect_uri(cb("x"));
        self.line.register_redirect_uri(cb("line"));
        self.twitch.register_redirect_uri(cb("twitch"));
    }
}

fn config(dir: &Path, public: &str, admin: &str, secret: &str, e: &Emulators) -> String {
    let mapper = |name: &str| format!("file://{}", dir.join(name).display());
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        r#"# Generated by `tessera demo` at each start (the emulators' ports change); edits here and
# through `tessera identity-config update` last until the demo stops. The mappers, the
# database and the secret in this folder are kept.
dsn: {dsn}
serve:
  public:
    base_url: {public}/
    port: {public_port}
  admin:
    base_url: {admin}/
    port: {admin_port}
secrets:
  default: [{secret}]
selfservice:
  default_browser_return_url: {public}/ui/welcome
  allowed_return_urls:
    - {public}/
  methods:
    password:
      enabled: true
    oidc:
      enabled: true
      config:
        providers:
          - id: dingtalk
            provider: dingtalk
            label: DingTalk
            client_id: {dt_id}
            client_secret: {dt_secret}
            scope: [openid, corpid]
            auth_url: {dt_auth}
            api_base_url: {dt_base}
            mapper_url: {dt_mapper}
          - id: vk
            provider: vk
            label: VK
            client_id: {vk_id}
            client_secret: {vk_secret}
            scope: [email]
            auth_url: {vk_auth}
            token_url: {vk_token}
            api_base_url: {vk_base}
            mapper_url: {vk_mapper}
          - id: vkid
            provider: vkid
            label: VK ID
            client_id: {vkid_id}
            scope: [vkid.personal_info, email]
            api_base_url: {vkid_base}
            mapper_url: {vk_mapper}
          - id: github
            provider: github
            label: GitHub
            client_id: {gh_id}
            client_secret: {gh_secret}
            scope: [user:email]
            auth_url: {gh_auth}
            token_url: {gh_token}
            api_base_url: {gh_base}
            mapper_url: {gh_mapper}
          - id: github-app
            provider: github-app
            label: GitHub App
            client_id: {gha_id}
            client_secret: {gha_secret}
            auth_url: {gha_auth}
            token_url: {gha_token}
            api_base_url: {gha_base}
            mapper_url: {gha_mapper}
          - id: google
            provider: google
            client_id: {gg_id}
            client_secret: {gg_secret}
            issuer_url: {gg_issuer}
            scope: [email, profile]
            mapper_url: {gg_mapper}
          - id: discord
            provider: discord
            client_id: {dc_id}
            client_secret: {dc_secret}
            auth_url: {dc_auth}
            api_base_url: {dc_base}
            mapper_url: {dc_mapper}
          - id: microsoft
            provider: microsoft
            microsoft_tenant: common
            client_id: {ms_id}
            client_secret: {ms_secret}
            issuer_url: {ms_base}
            api_base_url: {ms_base}
            scope: [profile, email]
            mapper_url: {ms_mapper}
          - id: apple
            provider: apple
            client_id: {al_id}
            apple_team_id: {al_team}
            apple_private_key_id: {al_kid}
            apple_private_key: {al_key}
            issuer_url: {al_issuer}
            scope: [name, email]
            mapper_url: {al_mapper}
{presets}          - id: yandex
            provider: yandex
            label: Yandex ID
            client_id: {ya_id}
            client_secret: {ya_secret}
            scope: [login:info, login:email, login:avatar]
            auth_url: {ya_auth}
            token_url: {ya_token}
            api_base_url: {ya_base}
            mapper_url: {ya_mapper}
          - id: wechat
            provider: wechat
            label: WeChat
            client_id: {wx_id}
            client_secret: {wx_secret}
            auth_url: {wx_auth}
            api_base_url: {wx_base}
            mapper_url: {wx_mapper}
          - id: feishu
            provider: feishu
            label: Feishu
            client_id: {fs_id}
            client_secret: {fs_secret}
            auth_url: {fs_auth}
            api_base_url: {fs_base}
            mapper_url: {fs_mapper}
          - id: qq
            provider: qq
            label: QQ
            client_id: {qq_id}
            client_secret: {qq_secret}
            auth_url: {qq_auth}
            api_base_url: {qq_base}
            mapper_url: {qq_mapper}
          - id: mailru
            provider: mailru
            label: Mail.ru
            client_id: {mr_id}
            client_secret: {mr_secret}
            api_base_url: {mr_base}
            mapper_url: {mr_mapper}
          - id: wecom
            provider: wecom
            label: WeCom
            client_id: {wc_id}
            client_secret: {wc_secret}
            wecom_agent_id: "{wc_agent}"
            auth_url: {wc_auth}
            api_base_url: {wc_base}
            mapper_url: {wc_mapper}
          - id: odnoklassniki
            provider: odnoklassniki
            label: OK
            client_id: {ok_id}
            client_secret: {ok_secret}
            odnoklassniki_application_key: {ok_key}
            scope: [VALUABLE_ACCESS, GET_EMAIL]
            auth_url: {ok_auth}
            api_base_url: {ok_base}
            mapper_url: {ok_mapper}
          - id: weibo
            provider: weibo
            label: Weibo
            client_id: {wb_id}
            client_secret: {wb_secret}
            auth_url: {wb_auth}
            api_base_url: {wb_base}
            mapper_url: {wb_mapper}
          - id: baidu
            provider: baidu
            label: Baidu
            client_id: {bd_id}
            client_secret: {bd_secret}
            auth_url: {bd_auth}
            api_base_url: {bd_base}
            mapper_url: {bd_mapper}
          - id: douyin
            provider: douyin
            label: Douyin
            client_id: {dy_id}
            client_secret: {dy_secret}
            auth_url: {dy_auth}
            api_base_url: {dy_base}
            mapper_url: {dy_mapper}
          - id: alipay
            provider: alipay
            label: Alipay
            client_id: {ap_id}
            client_secret: {ap_key}
            alipay_public_key: {ap_public}
            auth_url: {ap_auth}
            api_base_url: {ap_base}
            mapper_url: {ap_mapper}
          - id: telegram
            provider: telegram_oidc
            label: Telegram
            client_id: {tg_id}
            client_secret: {tg_secret}
            issuer_url: {tg_issuer}
            mapper_url: {tg_mapper}
          - id: telegram-widget
            provider: telegram
            label: Telegram (widget)
            client_id: {tgw_id}
            client_secret: {tgw_token}
            auth_url: {tgw_auth}
            mapper_url: {tgw_mapper}
          - id: spotify
            provider: spotify
            label: Spotify
            client_id: {sp_id}
            client_secret: {sp_secret}
            auth_url: {sp_auth}
            api_base_url: {sp_base}
            mapper_url: {sp_mapper}
          - id: naver
            provider: naver
            label: Naver
            client_id: {nv_id}
            client_secret: {nv_secret}
            auth_url: {nv_auth}
            api_base_url: {nv_base}
            mapper_url: {nv_mapper}
          - id: kakao
            provider: kakao
            label: Kakao
            client_id: {kk_id}
            client_secret: {kk_secret}
            auth_url: {kk_auth}
            api_base_url: {kk_base}
            mapper_url: {kk_mapper}
          - id: bitbucket
            provider: bitbucket
            label: Bitbucket
            client_id: {bb_id}
            client_secret: {bb_secret}
            auth_url: {bb_auth}
            api_base_url: {bb_base}
            mapper_url: {bb_mapper}
          - id: uaepass
            provider: uaepass
            label: UAE PASS
            client_id: {up_id}
            client_secret: {up_secret}
            issuer_url: {up_base}
            mapper_url: {up_mapper}
          - id: patreon
            provider: patreon
            label: Patreon
            client_id: {pt_id}
            client_secret: {pt_secret}
            api_base_url: {pt_base}
            mapper_url: {pt_mapper}
          - id: netid
            provider: netid
            label: netID
            client_id: {ni_id}
            client_secret: {ni_secret}
            issuer_url: {ni_issuer}
            mapper_url: {ni_mapper}
          - id: salesforce
            provider: salesforce
            label: Salesforce
            client_id: {sf_id}
            client_secret: {sf_secret}
            issuer_url: {sf_issuer}
            scope: [profile, email]
            mapper_url: {sf_mapper}
          - id: facebook
            provider: facebook
            label: Facebook
            client_id: {fb_id}
            client_secret: {fb_secret}
            auth_url: {fb_auth}
            api_base_url: {fb_base}
            mapper_url: {fb_mapper}
          - id: amazon
            provider: amazon
            label: Amazon
            client_id: {am_id}
            client_secret: {am_secret}
            pkce: force
            auth_url: {am_auth}
            api_base_url: {am_base}
            mapper_url: {am_mapper}
          - id: x
            provider: x
            label: X
            client_id: {x_id}
            client_secret: {x_secret}
            auth_url: {x_auth}
            api_base_url: {x_base}
            mapper_url: {x_mapper}
          - id: line
            provider: line
            label: LINE
            client_id: {line_id}
            client_secret: {line_secret}
            scope: [profile, email]
            auth_url: {line_auth}
            api_base_url: {line_base}
            mapper_url: {line_mapper}
          - id: twitch
            provider: twitch
            label: Twitch
            client_id: {tw_id}
            client_secret: {tw_secret}
            issuer_url: {tw_issuer}
            mapper_url: {tw_mapper}
  flows:
    registration:
      after:
        password:
          hooks:
            - hook: session
            - hook: show_verification_ui
        oidc:
          hooks:
            - hook: session
    verification:
      enabled: true
      use: code
    recovery:
      enabled: true
      use: code
# Email and SMS go to catchers on this machine; {outbox} lists what was sent.
courier:
  smtp:
    connection_uri: smtp://127.0.0.1:{smtp_port}/?disable_starttls=true
    from_address: accounts@tessera.demo
    from_name: Tessera demo
  worker:
    pull_wait: 500ms
  channels:
    - id: sms
      type: http
      request_config:
        url: {sms_url}/send
        method: POST
        body: {sms_body}
"#,
        outbox = e.outbox.page_url(),
        smtp_port = e.outbox.smtp.port,
        sms_url = e.outbox.sms.base_url(),
        sms_body = q(&format!(
            "base64://{}",
            base64_encode("function(ctx) { to: ctx.recipient, body: ctx.body }")
        )),
        dsn = q(&format!(
            "sqlite://{}?mode=rwc",
            dir.join("tessera.db").display()
        )),
        public_port = port_of(public),
        admin_port = port_of(admin),
        secret = q(secret),
        dt_id = q(e.dingtalk.client_id()),
        dt_secret = q(e.dingtalk.client_secret()),
        dt_auth = e.dingtalk.auth_url(),
        dt_base = e.dingtalk.base_url(),
        dt_mapper = q(&mapper("dingtalk.jsonnet")),
        vk_id = q(e.vk.client_id()),
        vk_secret = q(e.vk.client_secret()),
        vk_auth = e.vk.auth_url(),
        vk_token = e.vk.token_url(),
        vk_base = e.vk.base_url(),
        vk_mapper = q(&mapper("vk.jsonnet")),
        vkid_id = q(e.vkid.client_id()),
        vkid_base = e.vkid.base_url(),
        gh_id = q(e.github.client_id()),
        gh_secret = q(e.github.client_secret()),
        gh_auth = e.github.auth_url(),
        gh_token = e.github.token_url(),
        gh_base = e.github.base_url(),
        gh_mapper = q(&mapper("github.jsonnet")),
        gha_id = q(e.github_app.client_id()),
        gha_secret = q(e.github_app.client_secret()),
        gha_auth = e.github_app.auth_url(),
        gha_token = e.github_app.token_url(),
        gha_base = e.github_app.base_url(),
        gha_mapper = q(&mapper("github_app.jsonnet")),
        gg_id = q(e.google.client_id()),
        gg_secret = q(e.google.client_secret()),
        gg_issuer = e.google.issuer(),
        gg_mapper = q(&mapper("google.jsonnet")),
        dc_id = q(e.discord.client_id()),
        dc_secret = q(e.discord.client_secret()),
        dc_auth = e.discord.auth_url(),
        dc_base = e.discord.base_url(),
        dc_mapper = q(&mapper("discord.jsonnet")),
        ms_id = q(e.microsoft.client_id()),
        ms_secret = q(e.microsoft.client_secret()),
        ms_base = e.microsoft.base_url(),
        ms_mapper = q(&mapper("microsoft.jsonnet")),
        al_id = q(e.apple.client_id()),
        al_team = q(e.apple.team_id()),
        al_kid = q(e.apple.key_id()),
        al_key = q(e.apple.private_key_pem()),
        al_issuer = e.apple.issuer(),
        al_mapper = q(&mapper("apple.jsonnet")),
        presets = e
            .presets
            .iter()
            .map(|(id, p)| format!(
                "          - id: {id}\n            provider: {id}\n            client_id: {}\n            client_secret: {}\n            issuer_url: {}\n            scope: [profile, email]\n            mapper_url: {}\n",
                q(p.client_id()),
                q(p.client_secret()),
                p.issuer(),
                q(&mapper("oidc_standard.jsonnet"))
            ))
            .collect::<String>(),
        ya_id = q(e.yandex.client_id()),
        ya_secret = q(e.yandex.client_secret()),
        ya_auth = e.yandex.auth_url(),
        ya_token = e.yandex.token_url(),
        ya_base = e.yandex.base_url(),
        ya_mapper = q(&mapper("yandex.jsonnet")),
        wx_id = q(e.wechat.client_id()),
        wx_secret = q(e.wechat.client_secret()),
        wx_auth = e.wechat.qr_auth_url(),
        wx_base = e.wechat.base_url(),
        wx_mapper = q(&mapper("wechat.jsonnet")),
        fs_id = q(e.feishu.client_id()),
        fs_secret = q(e.feishu.client_secret()),
        fs_auth = e.feishu.auth_url(),
        fs_base = e.feishu.base_url(),
        fs_mapper = q(&mapper("feishu.jsonnet")),
        qq_id = q(e.qq.client_id()),
        qq_secret = q(e.qq.client_secret()),
        qq_auth = e.qq.auth_url(),
        qq_base = e.qq.base_url(),
        qq_mapper = q(&mapper("qq.jsonnet")),
        mr_id = q(e.mailru.client_id()),
        mr_secret = q(e.mailru.client_secret()),
        mr_base = e.mailru.base_url(),
        mr_mapper = q(&mapper("mailru.jsonnet")),
        wc_id = q(e.wecom.corp_id()),
        wc_secret = q(e.wecom.client_secret()),
        wc_agent = e.wecom.agent_id(),
        wc_auth = e.wecom.web_login_url(),
        wc_base = e.wecom.base_url(),
        wc_mapper = q(&mapper("wecom.jsonnet")),
        ok_id = q(e.ok.client_id()),
        ok_secret = q(e.ok.client_secret()),
        ok_key = q(e.ok.application_key()),
        ok_auth = e.ok.auth_url(),
        ok_base = e.ok.base_url(),
        ok_mapper = q(&mapper("odnoklassniki.jsonnet")),
        wb_id = q(e.weibo.client_id()),
        wb_secret = q(e.weibo.client_secret()),
        wb_auth = e.weibo.auth_url(),
        wb_base = e.weibo.base_url(),
        wb_mapper = q(&mapper("weibo.jsonnet")),
        bd_id = q(e.baidu.client_id()),
        bd_secret = q(e.baidu.client_secret()),
        bd_auth = e.baidu.auth_url(),
        bd_base = e.baidu.base_url(),
        bd_mapper = q(&mapper("baidu.jsonnet")),
        dy_id = q(e.douyin.client_id()),
        dy_secret = q(e.douyin.client_secret()),
        dy_auth = e.douyin.auth_url(),
        dy_base = e.douyin.base_url(),
        dy_mapper = q(&mapper("douyin.jsonnet")),
        ap_id = q(e.alipay.app_id()),
        ap_key = q(e.alipay.app_private_key_pem()),
        ap_public = q(&e.alipay.alipay_public_key_pem()),
        ap_auth = e.alipay.auth_url(),
        ap_base = e.alipay.base_url(),
        ap_mapper = q(&mapper("alipay.jsonnet")),
        tg_id = q(e.telegram.client_id()),
        tg_secret = q(e.telegram.client_secret()),
        tg_issuer = e.telegram.issuer(),
        tg_mapper = q(&mapper("telegram_oidc.jsonnet")),
        tgw_id = q(e.telegram_widget.bot_id()),
        tgw_token = q(e.telegram_widget.bot_token()),
        tgw_auth = e.telegram_widget.auth_url(),
        tgw_mapper = q(&mapper("telegram.jsonnet")),
        sp_id = q(e.spotify.client_id()),
        sp_secret = q(e.spotify.client_secret()),
        sp_auth = e.spotify.auth_url(),
        sp_base = e.spotify.base_url(),
        sp_mapper = q(&mapper("spotify.jsonnet")),
        nv_id = q(e.naver.client_id()),
        nv_secret = q(e.naver.client_secret()),
        nv_auth = e.naver.auth_url(),
        nv_base = e.naver.base_url(),
        nv_mapper = q(&mapper("naver.jsonnet")),
        kk_id = q(e.kakao.client_id()),
        kk_secret = q(e.kakao.client_secret()),
        kk_auth = e.kakao.auth_url(),
        kk_base = e.kakao.base_url(),
        kk_mapper = q(&mapper("kakao.jsonnet")),
        bb_id = q(e.bitbucket.client_id()),
        bb_secret = q(e.bitbucket.client_secret()),
        bb_auth = e.bitbucket.auth_url(),
        bb_base = e.bitbucket.base_url(),
        bb_mapper = q(&mapper("bitbucket.jsonnet")),
        up_id = q(e.uaepass.client_id()),
        up_secret = q(e.uaepass.client_secret()),
        up_base = e.uaepass.base_url(),
        up_mapper = q(&mapper("uaepass.jsonnet")),
        pt_id = q(e.patreon.client_id()),
        pt_secret = q(e.patreon.client_secret()),
        pt_base = e.patreon.base_url(),
        pt_mapper = q(&mapper("patreon.jsonnet")),
        ni_id = q(e.netid.client_id()),
        ni_secret = q(e.netid.client_secret()),
        ni_issuer = e.netid.issuer(),
        ni_mapper = q(&mapper("oidc_standard.jsonnet")),
        sf_id = q(e.salesforce.client_id()),
        sf_secret = q(e.salesforce.client_secret()),
        sf_issuer = e.salesforce.issuer(),
        sf_mapper = q(&mapper("salesforce.jsonnet")),
        fb_id = q(e.facebook.client_id()),
        fb_secret = q(e.facebook.client_secret()),
        fb_auth = e.facebook.auth_url(),
        fb_base = e.facebook.base_url(),
        fb_mapper = q(&mapper("facebook.jsonnet")),
        am_id = q(e.amazon.client_id()),
        am_secret = q(e.amazon.client_secret()),
        am_auth = e.amazon.auth_url(),
        am_base = e.amazon.base_url(),
        am_mapper = q(&mapper("amazon.jsonnet")),
        x_id = q(e.x.client_id()),
        x_secret = q(e.x.client_secret()),
        x_auth = e.x.auth_url(),
        x_base = e.x.base_url(),
        x_mapper = q(&mapper("x.jsonnet")),
        line_id = q(e.line.client_id()),
        line_secret = q(e.line.client_secret()),
        line_auth = e.line.auth_url(),
        line_base = e.line.base_url(),
        line_mapper = q(&mapper("line.jsonnet")),
        tw_id = q(e.twitch.client_id()),
        tw_secret = q(e.twitch.client_secret()),
        tw_issuer = e.twitch.issuer(),
        tw_mapper = q(&mapper("twitch.jsonnet")),
    )
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

pub async fn run(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create the demo folder {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    for (name, text) in MAPPERS {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let secret = serve::dev_secret(&dir)?;

    let emulators = Emulators::start().await?;
    // Bound before the configuration is written, so it can name the real ports.
    let listeners = Listeners::bind(
        (args.host.as_str(), args.port),
        (args.host.as_str(), args.admin_port),
    )
    .await?;
    let (pa, aa) = listeners.addrs();
    let public = format!("http://{pa}");
    let admin = format!("http://{aa}");
    emulators.register_callbacks(&public);

    // The other side of Tessera: an app that signs in through its OpenID Provider, registered
    // through the admin API once the server is up.
    let app = SampleApp::serve(loopback().await?, &format!("{public}/oidc"))?;
    tokio::spawn(register_sample_app(admin.clone(), app.client_metadata()));

    let config_path = dir.join("tessera.yml");
    std::fs::write(
        &config_path,
        config(&dir, &public, &admin, &secret, &emulators),
    )
    .with_context(|| format!("cannot write {}", config_path.display()))?;

    let note = format!(
        "\n  Open {public}/ui/login in a browser: sign up with a password, or continue with DingTalk,\n  WeChat, WeCom, Feishu, QQ, Weibo, Baidu, Douyin, Alipay, Telegram, Telegram (widget), VK,\n  VK ID, GitHub, GitHub App, Google, Discord, Microsoft, Apple, GitLab, Auth0, Slack, LinkedIn, Spotify,\n  Naver, Kakao, Bitbucket, Salesforce, netID, Patreon, UAE PASS, Facebook, Amazon, X, LINE, Twitch, Yandex ID, Mail.ru or OK. Those are emulators on this machine ({}, {}, {}, {},\n  {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}), in that order; each shows a page of fake people to sign in as.\n\n  Sample app: {}/ signs in through Tessera's OpenID Provider ({public}/oidc,\n  client id `{}`), with a consent step; one Tessera session signs you in to both.\n\n  What was sent (the emails and texts with codes): {}\n\n  Demo folder: {}  (tessera.yml, the *.jsonnet mappers, tessera.db)\n  Try: tessera identity-config get --endpoint {admin}\n       tessera clients list --endpoint {admin}\n  Stop with Ctrl-C.",
        emulators.dingtalk.base_url(),
        emulators.wechat.base_url(),
        emulators.wecom.base_url(),
        emulators.feishu.base_url(),
        emulators.qq.base_url(),
        emulators.weibo.base_url(),
        emulators.baidu.base_url(),
        emulators.douyin.base_url(),
        emulators.alipay.base_url(),
        emulators.telegram.issuer(),
        emulators.telegram_widget.auth_url(),
        emulators.vk.base_url(),
        emulators.vkid.base_url(),
        emulators.github.base_url(),
        emulators.github_app.base_url(),
        emulators.google.issuer(),
        emulators.discord.base_url(),
        emulators.microsoft.base_url(),
        emulators.apple.issuer(),
        emulators.presets[0].1.issuer(),
        emulators.presets[1].1.issuer(),
        emulators.presets[2].1.issuer(),
        emulators.presets[3].1.issuer(),
        emulators.spotify.base_url(),
        emulators.naver.base_url(),
        emulators.kakao.base_url(),
        emulators.bitbucket.base_url(),
        emulators.salesforce.issuer(),
        emulators.netid.issuer(),
        emulators.patreon.base_url(),
        emulators.uaepass.base_url(),
        emulators.facebook.base_url(),
        emulators.amazon.base_url(),
        emulators.x.base_url(),
        emulators.line.base_url(),
        emulators.twitch.base_url(),
        emulators.yandex.base_url(),
        emulators.mailru.base_url(),
        emulators.ok.base_url(),
        app.base_url(),
        sample_app::CLIENT_ID,
        emulators.outbox.page_url(),
        dir.display(),
    );
    serve::run(&[config_path], true, Some(listeners), &note).await
}

/// Registers (or, on later runs with new ports, updates) the sample app once the admin API
/// answers. A failure is reported and leaves the rest of the demo working.
async fn register_sample_app(admin: String, metadata: serde_json::Value) {
    let http = reqwest::Client::new();
    let ready = format!("{admin}/health/ready");
    for _ in 0..300 {
        if http
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let one = format!("{admin}/admin/clients/{}", sample_app::CLIENT_ID);
    let result = match http.put(&one).json(&metadata).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => http
            .post(format!("{admin}/admin/clients"))
            .json(&metadata)
            .send()
            .await
            .map(|r| r.status()),
        other => other.map(|r| r.status()),
    };
    match result {
        Ok(s) if s.is_success() => {}
        Ok(s) => eprintln!("warning: the sample app could not be registered (HTTP {s})"),
        Err(e) => eprintln!("warning: the sample app could not be registered: {e}"),
    }
}

/// Standard base64 (for a `base64://` document in the generated configuration).
fn base64_encode(text: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(super::base64_encode(""), "");
        assert_eq!(super::base64_encode("f"), "Zg==");
        assert_eq!(super::base64_encode("fo"), "Zm8=");
        assert_eq!(super::base64_encode("foo"), "Zm9v");
        assert_eq!(super::base64_encode("{ a: 1 }"), "eyBhOiAxIH0=");
    }
}
