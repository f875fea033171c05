//! One module per scenario of issue 21 (numbers as in the issue).

pub mod abuse;
pub mod concurrency;
pub mod dbdown;
pub mod instances;
pub mod kill9;
pub mod shutdown;
pub mod upgrade;
pub mod upstreams;
