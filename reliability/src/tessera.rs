//! The real `tessera` binary as a child process on loopback ports: started on a configuration
//! file, killed with SIGKILL, restarted on the same ports and database.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `tessera` binary the suite runs: `TESSERA_BIN`, else the one next to this runner
/// (`target/<profile>/tessera`, built by `cargo build -p tessera`).
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("the runner's own path")?;
    let bin = exe
        .parent()
        .context("the runner lives in a folder")?
        .join("tessera");
    if !bin.exists() {
        bail!(
            "{} does not exist: run `cargo build -p tessera` first (or set TESSERA_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A free loopback port (bound and released: the server binds it right after).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running (or killed) `tessera serve`.
pub struct Tessera {
    pub public: String,
    pub admin: String,
    pub dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
}

impl Tessera {
    /// Writes `tessera.yml` in `dir` (the base: dsn, ports, a secret, cheap hashes; `extra`
    /// deep-merged over it), migrates the database and starts the server. A port found free
    /// can be taken by someone else before the server binds it: then it tries again (three
    /// times) with other ports.
    pub async fn start(dir: &Path, dsn: &str, extra: Value) -> Result<Tessera> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(dir, dsn, extra.clone()).await {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("tessera did not start")))
    }

    async fn try_start(dir: &Path, dsn: &str, extra: Value) -> Result<Tessera> {
        let (pp, ap) = (free_port()?, free_port()?);
        let mut doc = json!({
            "dsn": dsn,
            "serve": {
                "public": {"base_url": format!("http://127.0.0.1:{pp}/"), "port": pp},
                "admin": {"base_url": format!("http://127.0.0.1:{ap}/"), "port": ap},
            },
            "secrets": {"default": ["reliability-secret-0123456789abcdef"]},
            "hashers": {"argon2": {"memory": "1MB", "iterations": 1}},
            "log": {"level": "warn"},
            // The load comes from one address and one app, and the checks afterwards offer
            // used codes and tokens on purpose: the per-minute abuse limits would answer 429.
            "limits": {
                "flows_per_address_per_minute": 1_000_000,
                "token_failures_per_client_per_minute": 1_000_000,
            },
        });
        tessera_testkit::config::merge(&mut doc, extra);
        let config = dir.join("tessera.yml");
        std::fs::write(&config, serde_json::to_string_pretty(&doc)?)?;
        let mut t = Tessera {
            public: format!("http://127.0.0.1:{pp}"),
            admin: format!("http://127.0.0.1:{ap}"),
            dir: dir.to_path_buf(),
            config,
            child: None,
            starts: 0,
        };
        // As an operator deploys: migrate first, then serve.
        t.migrate(&["up"])?;
        t.spawn().await?;
        Ok(t)
    }

    /// `tessera migrate sql <args> --yes` on this server's configuration; its output.
    pub fn migrate(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(binary()?)
            .args(["migrate", "sql"])
            .args(args)
            .args(["--yes", "--config"])
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .context("run tessera migrate")?;
        if !out.status.success() {
            bail!(
                "tessera migrate sql {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts the process and waits (at most 60 s) until `/health/ready` answers 200.
    pub async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tessera.log"))?;
        let child = Command::new(binary()?)
            .args(["serve", "--config"])
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn tessera")?;
        self.child = Some(child);
        self.starts += 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("{}/health/ready", self.public))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status() == 200
            {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "tessera exited ({status}) before it was ready; log: {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "tessera was not ready within 60 s; log: {}",
            self.log_tail()
        )
    }

    /// SIGKILL: no shutdown code runs, as when the machine loses power or the OOM killer acts.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, as an orchestrator stops a container, then waits (at most `grace`) for the
    /// process to exit: its exit status and how long it took (`None` when it did not exit in
    /// time, after which it is killed).
    pub async fn terminate(
        &mut self,
        grace: Duration,
    ) -> Result<(Option<std::process::ExitStatus>, Duration)> {
        let Some(mut c) = self.child.take() else {
            bail!("tessera is not running");
        };
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed");
        while started.elapsed() < grace {
            if let Some(status) = c.try_wait()? {
                return Ok((Some(status), started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.kill()?;
        c.wait()?;
        Ok((None, started.elapsed()))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("tessera.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// `tessera <args>` (a client command such as `identity-config`); its standard output.
pub fn cli(args: &[&str]) -> Result<String> {
    let out = Command::new(binary()?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run tessera")?;
    if !out.status.success() {
        bail!(
            "tessera {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
