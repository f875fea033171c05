//! Emulators of real upstream providers: each serves the provider's own paths, parameters,
//! JSON and error shapes on 127.0.0.1, refuses what the real one refuses (wrong secret, wrong
//! `redirect_uri`, reused or expired codes, …), and shows a consent page listing fake users.
//! Tests pick a user without a page through `user=<key>` on the authorize URL or
//! `set_next_user`.
//!
//! Architecture invariant: nothing here is part of the identity server. The test suites and
//! `tessera demo` are the only users; an emulator never talks to the real provider and keeps
//! everything in memory.

pub mod dingtalk;
pub mod github;
pub mod vk;
pub mod vkid;
