//! Emulators of real upstream providers: each serves the provider's own paths, parameters,
//! JSON and error shapes on 127.0.0.1, refuses what the real one refuses (wrong secret, wrong
//! `redirect_uri`, reused or expired codes, …), and shows a consent page listing fake users.
//! Tests pick a user without a page through `user=<key>` on the authorize URL or
//! `set_next_user`.

pub mod dingtalk;
pub mod github;
pub mod vk;
pub mod vkid;
