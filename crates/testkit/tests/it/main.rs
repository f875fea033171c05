//! `tessera-testkit`'s own tests, in one test binary (each module was a binary of its own, and
//! each linked the server again): the fake OIDC upstream and the third-party peers are proven
//! here before the end-to-end suites rely on them, and `tidy` checks the workspace's
//! dependencies against ARCHITECTURE.md.

mod fake_oidc;
mod openapi;
mod peers;
mod tidy;
