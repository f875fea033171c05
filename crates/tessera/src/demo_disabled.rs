//! `tessera demo` in a binary built without the `demo` feature: the production build links no
//! emulators (fake GitHub, VK, VK ID and DingTalk servers, a sample app), so the subcommand
//! stays, takes any arguments, and says how to get a binary that has it.

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Whatever `tessera demo` would take; ignored here.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

pub async fn run(_: DemoArgs) -> Result<()> {
    bail!(
        "this tessera binary was built without the `demo` feature, so it has no emulators to run \
         a demo with; build it with the default features (`cargo build -p tessera`) to use `tessera demo`"
    )
}
