//! Emulators of real upstream providers: each serves the provider's own paths, parameters,
//! JSON and error shapes on 127.0.0.1, refuses what the real one refuses (wrong secret, wrong
//! `redirect_uri`, reused or expired codes, …), and shows a consent page listing fake users.
//! Tests pick a user without a page through `user=<key>` on the authorize URL or
//! `set_next_user`. [`sample_app`] is the other side: an app that signs in through Tessera's
//! OpenID Provider, for `tessera demo`.
//!
//! Architecture invariant: nothing here is part of the identity server. The test suites and
//! `tessera demo` are the only users; an emulator never talks to the real provider and keeps
//! everything in memory.

pub mod alipay;
pub mod amazon;
pub mod apple;
pub mod baidu;
pub mod bitbucket;
mod common;
pub mod dingtalk;
pub mod discord;
pub mod douyin;
pub mod facebook;
pub mod feishu;
pub mod github;
pub mod google;
pub mod kakao;
pub mod line;
pub mod mailru;
pub mod microsoft;
pub mod naver;
pub mod odnoklassniki;
pub mod oidc_preset;
pub mod outbox;
pub mod patreon;
pub mod qq;
pub mod sample_app;
pub mod sms_sink;
pub mod smtp_sink;
pub mod spotify;
pub mod telegram;
pub mod telegram_oidc;
pub mod twitch;
pub mod uaepass;
pub mod vk;
pub mod vkid;
pub mod wechat;
pub mod wecom;
pub mod weibo;
pub mod x;
pub mod yandex;

/// A running emulator's server task; dropping the emulator stops it.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn(listener: tokio::net::TcpListener, app: axum::Router) -> Task {
    Task(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

/// A free port on 127.0.0.1; panics when there is none, which only tests want.
async fn free_loopback_port(emulator: &str) -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind the {emulator} emulator: {e}"))
}
