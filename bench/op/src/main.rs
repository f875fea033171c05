//! The OpenID Provider benchmark (see `bench/README.md`, "OpenID Provider"):
//!
//! 1. client-credentials tokens/s of `tessera serve` (release, SQLite) and of the `oidc-provider`
//!    npm package (`peers/cc-provider.mjs`) on the same machine, in the same run, alternating
//!    node, tessera, node, tessera; the ratio is of the means (target ≥ 5×);
//! 2. Tessera's authorization-code exchanges/s: codes issued beforehand (a signed-in session
//!    asking `/oidc/auth` directly), then exchanged with PKCE as fast as the clients can;
//! 3. whole code flows/s (authorize + exchange), for information.
//!
//! Every request must succeed: one non-200 answer makes the run an error, not a result. Only
//! 127.0.0.1 is used. Nothing here is part of CI.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::Digest;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Result<T, E = String> = std::result::Result<T, E>;

const TARGET_RATIO: f64 = 5.0;
const REDIRECT: &str = "https://bench.example.com/cb";

struct Opts {
    tessera: PathBuf,
    peers: PathBuf,
    duration: Duration,
    concurrency: usize,
    codes: usize,
    workdir: PathBuf,
    /// `oidc_provider.signing_alg` of the server (RS256 or ES256).
    alg: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn opts() -> Result<Opts> {
    let secs: f64 = env_or("BENCH_DURATION_SECS", "10")
        .parse()
        .map_err(|_| "BENCH_DURATION_SECS must be a number of seconds")?;
    Ok(Opts {
        tessera: PathBuf::from(env_or("TESSERA_BIN", "target/release/tessera")),
        peers: PathBuf::from(env_or("BENCH_PEERS", "peers")),
        duration: Duration::from_secs_f64(secs),
        concurrency: env_or("BENCH_CONCURRENCY", "32")
            .parse()
            .map_err(|_| "BENCH_CONCURRENCY must be a number")?,
        codes: env_or("BENCH_CODES", "5000")
            .parse()
            .map_err(|_| "BENCH_CODES must be a number")?,
        workdir: PathBuf::from(env_or("BENCH_WORKDIR", "/tmp/tessera-bench-op")),
        alg: env_or("BENCH_SIGNING_ALG", "RS256"),
    })
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start_tessera(o: &Opts) -> Result<(Proc, String, String)> {
    let dir = &o.workdir;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dsn = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
    let (pp, ap) = (free_port()?, free_port()?);
    let config = dir.join("tessera.yml");
    let alg = &o.alg;
    // Every code is one `/oidc/auth` request from 127.0.0.1, which stores a pending request:
    // the per-address limit on those (`limits.flows_per_address_per_minute`) would end the run
    // after a few dozen codes.
    std::fs::write(
        &config,
        format!(
            "dsn: \"{dsn}\"\nlog:\n  level: error\nserve:\n  public:\n    host: 127.0.0.1\n    port: {pp}\n    base_url: http://127.0.0.1:{pp}/\n  admin:\n    host: 127.0.0.1\n    port: {ap}\nsecrets:\n  default:\n    - \"bench-op-secret-0123456789abcdef\"\nselfservice:\n  flows:\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\nlimits:\n  flows_per_address_per_minute: 100000000\noidc_provider:\n  signing_alg: {alg}\n  lifespans:\n    authorization_code: 10m\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let out = Command::new(&o.tessera)
        .args(["migrate", "sql", "up", "-e", "--yes"])
        .env("DSN", &dsn)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", o.tessera.display()))?;
    if !out.status.success() {
        return Err(format!(
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let log = std::fs::File::create(dir.join("tessera.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&o.tessera)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", o.tessera.display()))?;
    Ok((
        Proc(child),
        format!("http://127.0.0.1:{pp}"),
        format!("http://127.0.0.1:{ap}"),
    ))
}

fn start_node(o: &Opts, client_id: &str, secret: &str) -> Result<(Proc, String)> {
    let mut child = Command::new("node")
        .arg(o.peers.join("cc-provider.mjs"))
        .arg(
            json!({"client_id": client_id, "client_secret": secret, "scope": "api:read"})
                .to_string(),
        )
        .current_dir(&o.peers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start node (run bash scripts/test-deps.sh): {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let issuer = line
        .trim()
        .strip_prefix("READY ")
        .ok_or_else(|| {
            format!("cc-provider did not start: {line:?} (run bash scripts/test-deps.sh)")
        })?
        .to_string();
    Ok((Proc(child), issuer))
}

async fn wait_ready(public: &str) -> Result<()> {
    let c = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = c.get(format!("{public}/oidc/jwks")).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("tessera did not answer /oidc/jwks within 15 s".into())
}

/// Runs `concurrency` clients posting client-credentials requests for `duration`; tokens/s.
async fn cc_run(token_url: &str, id: &str, secret: &str, o: &Opts) -> Result<f64> {
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + o.duration;
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..o.concurrency {
        let (ok, bad) = (ok.clone(), bad.clone());
        let (url, id, secret) = (token_url.to_string(), id.to_string(), secret.to_string());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            while Instant::now() < deadline {
                let r = c
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials&scope=api%3Aread")
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let bad = bad.load(Ordering::Relaxed);
    if bad > 0 {
        return Err(format!(
            "{bad} client-credentials requests to {token_url} failed"
        ));
    }
    Ok(ok.load(Ordering::Relaxed) as f64 / secs)
}

fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ (std::process::id() as u8);
    }
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn get_code(c: &reqwest::Client, auth: &str, session: &str) -> Result<String> {
    let r = c
        .get(auth)
        .header("x-session-token", session)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    url::Url::parse(&loc)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
        .ok_or_else(|| format!("no code from /oidc/auth: {} {loc}", r.status()))
}

async fn exchange(
    c: &reqwest::Client,
    token_url: &str,
    id: &str,
    secret: &str,
    code: &str,
    verifier: &str,
) -> bool {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .finish();
    matches!(c.post(token_url).basic_auth(id, Some(secret)).header("content-type", "application/x-www-form-urlencoded").body(body).send().await, Ok(r) if r.status() == 200)
}

async fn bench(o: &Opts) -> Result<()> {
    let (_tessera, public, admin) = start_tessera(o)?;
    wait_ready(&public).await?;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let machine: Value = c
        .post(format!("{admin}/admin/clients"))
        .json(&json!({"client_name": "bench machine", "app_type": "machine", "scope": "api:read"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mid = machine["client_id"]
        .as_str()
        .ok_or("no machine client")?
        .to_string();
    let msecret = machine["client_secret"]
        .as_str()
        .ok_or("no secret")?
        .to_string();
    let (_node, node_issuer) = start_node(o, &mid, &msecret)?;
    let node_token = format!("{node_issuer}/token");
    let tessera_token = format!("{public}/oidc/token");

    println!(
        "client credentials: {} clients, {:?} per run, alternating node oidc-provider and tessera",
        o.concurrency, o.duration
    );
    // Warm-up of both (JIT, connection pools, SQLite pages).
    let warm = Opts {
        duration: Duration::from_secs(1),
        ..clone_opts(o)
    };
    cc_run(&node_token, &mid, &msecret, &warm).await?;
    cc_run(&tessera_token, &mid, &msecret, &warm).await?;
    let mut node = vec![];
    let mut tess = vec![];
    for round in 1..=2 {
        let n = cc_run(&node_token, &mid, &msecret, o).await?;
        println!("  round {round}: oidc-provider {n:>9.0} tokens/s");
        let t = cc_run(&tessera_token, &mid, &msecret, o).await?;
        println!("  round {round}: tessera       {t:>9.0} tokens/s");
        node.push(n);
        tess.push(t);
    }
    let (n, t) = (mean(&node), mean(&tess));
    let ratio = t / n;
    println!(
        "client credentials: tessera {t:.0}/s, oidc-provider {n:.0}/s, ratio {ratio:.2}× (target ≥ {TARGET_RATIO}×) {}",
        if ratio >= TARGET_RATIO {
            "ok"
        } else {
            "MISSED"
        }
    );

    // Code exchanges.
    let reg: Value = c
        .get(format!("{public}/self-service/registration/api"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let flow = reg["id"].as_str().ok_or("no registration flow")?;
    let done: Value = c
        .post(format!("{public}/self-service/registration?flow={flow}"))
        .json(&json!({"method": "password", "traits": {"email": "bench-op@example.com"}, "password": "a-bench-password-42"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let session = done["session_token"]
        .as_str()
        .ok_or_else(|| format!("no session token: {done}"))?
        .to_string();
    let app: Value = c
        .post(format!("{admin}/admin/clients"))
        .json(
            &json!({"client_name": "bench web", "redirect_uris": [REDIRECT], "skip_consent": true}),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let aid = app["client_id"].as_str().ok_or("no app")?.to_string();
    let asecret = app["client_secret"]
        .as_str()
        .ok_or("no app secret")?
        .to_string();
    let (verifier, challenge) = pkce();
    let auth = {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", aid.as_str()),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid email"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        format!("{public}/oidc/auth?{q}")
    };
    // Issue the codes (concurrently), then exchange them all, timed.
    let per = o.codes.div_ceil(o.concurrency);
    let mut tasks = vec![];
    for _ in 0..o.concurrency {
        let (c, auth, session) = (c.clone(), auth.clone(), session.clone());
        tasks.push(tokio::spawn(async move {
            let mut codes = vec![];
            for _ in 0..per {
                codes.push(get_code(&c, &auth, &session).await?);
            }
            Ok::<_, String>(codes)
        }));
    }
    let mut batches = vec![];
    for t in tasks {
        batches.push(t.await.map_err(|e| e.to_string())??);
    }
    let total: usize = batches.iter().map(Vec::len).sum();
    let start = Instant::now();
    let bad = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![];
    for codes in batches {
        let (c, url, id, secret, v, bad) = (
            c.clone(),
            tessera_token.clone(),
            aid.clone(),
            asecret.clone(),
            verifier.clone(),
            bad.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for code in codes {
                if !exchange(&c, &url, &id, &secret, &code, &v).await {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    if bad.load(Ordering::Relaxed) > 0 {
        return Err(format!(
            "{} code exchanges failed",
            bad.load(Ordering::Relaxed)
        ));
    }
    println!(
        "code exchanges: {total} in {secs:.2} s = {:.0} exchanges/s (PKCE, id_token signed {}, access token stored)",
        total as f64 / secs,
        o.alg
    );
    // Whole code flows (authorize + exchange) for the run's duration.
    let deadline = Instant::now() + o.duration;
    let ok = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..o.concurrency {
        let (c, auth, session, url, id, secret, v, ok, bad) = (
            c.clone(),
            auth.clone(),
            session.clone(),
            tessera_token.clone(),
            aid.clone(),
            asecret.clone(),
            verifier.clone(),
            ok.clone(),
            bad.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match get_code(&c, &auth, &session).await {
                    Ok(code) if exchange(&c, &url, &id, &secret, &code, &v).await => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    if bad.load(Ordering::Relaxed) > 0 {
        return Err("code flows failed".into());
    }
    println!(
        "code flows (authorize + exchange): {:.0}/s",
        ok.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn clone_opts(o: &Opts) -> Opts {
    Opts {
        tessera: o.tessera.clone(),
        peers: o.peers.clone(),
        duration: o.duration,
        concurrency: o.concurrency,
        codes: o.codes,
        workdir: o.workdir.clone(),
        alg: o.alg.clone(),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() -> ExitCode {
    let run = || -> Result<()> {
        let o = opts()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(bench(&o))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-op: error: {e}");
            ExitCode::FAILURE
        }
    }
}
