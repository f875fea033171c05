//! Complete social sign-ins per second, end to end (see `bench/README.md`, "Social sign-in").
//!
//! One process holds the fake OIDC upstream (`tessera_testkit::fake_oidc`, ES256, on its own
//! tokio runtime) and the browser-like clients (another runtime); the server under test is the
//! real `tessera serve` release binary, a child process on a fresh SQLite file. A journey is what
//! a browser does for "Continue with Acme":
//!
//! 1. `GET /self-service/login/browser` with `Accept: application/json`: the flow, its
//!    `csrf_token` node and the `tessera_csrf_token` cookie;
//! 2. `POST` the flow's `ui.action` as a form (`csrf_token`, `provider`): 303 to the upstream's
//!    authorize URL and the `tessera_continuity` cookie;
//! 3. `GET` that URL: the fake signs its user in at once and answers 303 to the callback;
//! 4. `GET` the callback: 303 to the return URL with the `tessera_session` cookie.
//!
//! Only journeys that end with a session cookie count; latency is the whole journey. Nothing here
//! is part of CI.

use base64::Engine as _;
use reqwest::header::{ACCEPT, HeaderValue, LINK, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_testkit::fake_oidc::{Alg, FakeOidc, FakeOptions};

/// The design target: completed sign-ins per second and their p99 latency.
const TARGET_PER_SEC: f64 = 1000.0;
const TARGET_P99_MS: f64 = 20.0;

const PROVIDER: &str = "acme";
const SESSION_COOKIE: &str = "tessera_session";
const RETURNING_SUBJECT: &str = "bench-user-1";

/// The GitHub-style mapper of the social sign-in tests (`crates/tessera/tests/social_signin.rs`).
const MAPPER: &str = r#"local claims = { email_verified: false } + std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      [if 'name' in claims then 'name' else null]: { first: claims.name },
    },
    metadata_public: { upstream_subject: claims.sub },
  },
}
"#;

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-social: error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    signups: bool,
    cache_ttl: Option<String>,
    tessera: PathBuf,
    workdir: PathBuf,
    /// `BENCH_SERVER_CPUS` (set by bench/social.sh when it pins): the server runs under
    /// `taskset -c <cpus>`, its mapper workers with it; this process stays where it was put.
    server_cpus: Option<String>,
}

/// `10s`, `500ms`, `1m` or a bare number of seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn opts() -> Result<Opts> {
    let dur = |name: &str, default: &str| {
        let v = env_or(name, default);
        parse_duration(&v).ok_or_else(|| format!("{name}={v}: use e.g. 10s, 500ms or 1m"))
    };
    let concurrency = env_or("BENCH_CONCURRENCY", "16");
    let concurrency: usize = concurrency
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("BENCH_CONCURRENCY={concurrency}: use a positive number"))?;
    let tessera = match std::env::var_os("TESSERA_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => std::env::current_exe()
            .map_err(|e| format!("cannot locate this executable: {e}"))?
            .with_file_name("tessera"),
    };
    let tessera = std::path::absolute(&tessera).unwrap_or(tessera);
    Ok(Opts {
        duration: dur("BENCH_DURATION", "10s")?,
        warmup: dur("BENCH_WARMUP", "1s")?,
        concurrency,
        signups: env_or("BENCH_SIGNUPS", "1") != "0",
        cache_ttl: std::env::var("BENCH_CACHE_TTL")
            .ok()
            .filter(|v| !v.is_empty()),
        tessera,
        workdir: PathBuf::from(env_or("BENCH_WORKDIR", "/tmp/tessera-bench-social")),
        server_cpus: std::env::var("BENCH_SERVER_CPUS")
            .ok()
            .filter(|v| !v.trim().is_empty()),
    })
}

// ---------------------------------------------------------------------------------------------
// Main

fn run() -> Result<()> {
    let o = opts()?;
    if !o.tessera.is_file() {
        return Err(format!(
            "no tessera binary at {}: build it with `cargo build --release -p tessera` or set TESSERA_BIN",
            o.tessera.display()
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // The upstream: its own runtime, so its work shows up under its own thread name.
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fake-oidc")
        .enable_all()
        .build()
        .map_err(|e| format!("upstream runtime: {e}"))?;
    let fake = Arc::new(upstream_rt.block_on(FakeOidc::start(FakeOptions {
        subject: RETURNING_SUBJECT.into(),
        claims: claims_of("bench.user@example.com", "Bench User"),
        alg: Alg::ES256,
        ..FakeOptions::default()
    })));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .map_err(|e| format!("client runtime: {e}"))?;

    let server = start_server(&o, &fake)?;
    let result = client_rt.block_on(async {
        tokio::select! {
            r = bench(&o, cores, fake.clone(), &server) => r,
            s = interrupted() => Err(format!("interrupted by {s}")),
        }
    });
    drop(server);
    drop(fake);
    upstream_rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// SIGINT or SIGTERM: the benchmark returns, so the server is stopped on the way out.
async fn interrupted() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term => "SIGTERM",
    }
}

fn claims_of(email: &str, name: &str) -> Value {
    json!({ "email": email, "email_verified": true, "name": name })
}

async fn bench(o: &Opts, cores: usize, fake: Arc<FakeOidc>, server: &Server) -> Result<()> {
    let ctx = Arc::new(Ctx {
        public: server.public.clone(),
        issuer: fake.issuer().to_string(),
        fake,
        signup_lock: tokio::sync::Mutex::new(()),
        next_subject: AtomicU64::new(1),
    });
    let d = o.duration;
    let c = o.concurrency;
    println!(
        "social sign-in benchmark: {} on SQLite ({}), fake OIDC upstream (ES256) at {}",
        o.tessera.display(),
        o.workdir.join("db.sqlite").display(),
        ctx.issuer
    );
    println!(
        "  {cores} CPU core(s), shared by the server (+ its 2 mapper worker processes), the upstream and the client: \
         all on the same machine, so the figures are conservative for the server alone"
    );
    println!(
        "  {c} client tasks, each its own browser (cookie store cleared per journey, connections kept); \
         session.cache_ttl = {}",
        o.cache_ttl.as_deref().unwrap_or("default (1s)")
    );

    match &o.server_cpus {
        Some(cpus) => println!(
            "  pinned: the server (and its mapper workers) on CPU(s) {cpus}; client and upstream on CPU(s) {}",
            std::env::var("BENCH_CLIENT_CPUS").unwrap_or_else(|_| "(the rest)".into())
        ),
        None => println!("  not pinned: client, upstream and server share every core"),
    }
    if let Ok(filter) = std::env::var("RUST_LOG") {
        println!(
            "  note: RUST_LOG={filter} is passed on to the server and overrides log.level: error; \
             logging slows it down, so these figures are not comparable"
        );
    }

    // Warm-up: the first sign-in is the user's sign-up; then some unmeasured returning sign-ins.
    let b = Browser::new();
    journey(&b, &ctx, Kind::Returning).await.map_err(|e| {
        format!(
            "the first (sign-up) journey failed: {e} (log: {})",
            server.log.display()
        )
    })?;
    if !o.warmup.is_zero() {
        let w = run_journeys(&ctx, Kind::Returning, o.warmup, c, server).await;
        if w.ok == 0 {
            return Err(format!(
                "no sign-in succeeded during the warm-up: {} (log: {})",
                w.first_error.unwrap_or_default(),
                server.log.display()
            ));
        }
    }

    // Same-run baseline around the measurement, as bench/run.sh alternates its runs.
    let half = d / 2;
    let a1 = run_alive(&ctx, half, c).await;
    let signin = run_journeys(&ctx, Kind::Returning, d, c, server).await;
    let a2 = run_alive(&ctx, half, c).await;
    let ids_after_signins = count_identities(&server.admin).await;

    println!();
    let alive_rate = (a1.rate() + a2.rate()) / 2.0;
    println!(
        "baseline: GET /health/alive, same server, same client ({c} tasks), 2 × {:.1}s around the sign-in run",
        half.as_secs_f64()
    );
    for (i, a) in [&a1, &a2].into_iter().enumerate() {
        println!(
            "  run {}: {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  failures {}{}",
            i + 1,
            a.rate(),
            ms(a.pct(0.50)),
            ms(a.pct(0.99)),
            a.failures,
            a.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
    }
    println!("  mean:  {alive_rate:>8.0} req/s");

    println!();
    println!(
        "returning-user sign-ins ({c} tasks, {:.1}s)",
        d.as_secs_f64()
    );
    signin.print(cores);
    let tessera_rps = signin.rate() * 3.0;
    println!(
        "  HTTP requests/s: {:.0} to tessera (3 per journey) + {:.0} to the upstream; tessera requests/s ÷ /health/alive req/s = {:.3}",
        tessera_rps,
        signin.rate(),
        if alive_rate > 0.0 {
            tessera_rps / alive_rate
        } else {
            0.0
        }
    );
    match &ids_after_signins {
        Ok(n) => println!(
            "  identities in the database: {n} (expected 1: returning sign-ins create none)"
        ),
        Err(e) => println!("  identities in the database: unknown ({e})"),
    }

    let mut signup = None;
    if o.signups {
        let s = run_journeys(&ctx, Kind::SignUp, d, c, server).await;
        println!();
        println!(
            "first-time sign-ups ({c} tasks, {:.1}s): a fresh upstream subject and email per journey",
            d.as_secs_f64()
        );
        println!(
            "  (FakeOidc::set_claims is global, so step 3 holds a lock around set_claims + GET /authorize: \
             upstream hops are serialised and their wait is part of the latency)"
        );
        s.print(cores);
        match count_identities(&server.admin).await {
            Ok(n) => println!(
                "  identities in the database: {n} (expected {})",
                ids_after_signins.as_ref().map_or(0, |b| *b) + s.ok
            ),
            Err(e) => println!("  identities in the database: unknown ({e})"),
        }
        signup = Some(s);
    } else {
        println!();
        println!("first-time sign-ups: skipped (BENCH_SIGNUPS=0)");
    }
    ctx.fake.set_claims(
        RETURNING_SUBJECT,
        claims_of("bench.user@example.com", "Bench User"),
    );

    println!();
    println!(
        "{:<36} {:>12} {:>10}  result",
        "metric (returning-user sign-ins)", "value", "target"
    );
    let rate = signin.rate();
    let p99 = ms(signin.pct(0.99));
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "{:<36} {:>10.0}/s {:>10}  {}",
        "completed sign-ins per second",
        rate,
        ">= 1000/s",
        verdict(rate >= TARGET_PER_SEC)
    );
    println!(
        "{:<36} {:>9.2} ms {:>10}  {}",
        "p99 journey latency",
        p99,
        "< 20 ms",
        verdict(signin.ok > 0 && p99 < TARGET_P99_MS)
    );
    if let Some(s) = &signup {
        println!(
            "{:<36} {:>10.0}/s {:>10}  (p99 {:.2} ms)",
            "first-time sign-ups per second (info)",
            s.rate(),
            "-",
            ms(s.pct(0.99))
        );
    }
    println!(
        "(on {cores} core(s) shared by client, upstream and server; server log: {})",
        server.log.display()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// The browser: a reqwest client with its own cookie store, no redirects, kept connections.

/// A cookie store for one browser. Everything runs on 127.0.0.1, so the store is one map of
/// name → value (cookies ignore ports); a `Max-Age=0` or empty value deletes.
#[derive(Default)]
struct Jar(Mutex<BTreeMap<String, String>>);

impl Jar {
    fn clear(&self) {
        self.0.lock().expect("lock").clear();
    }
}

impl reqwest::cookie::CookieStore for Jar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &HeaderValue>, _url: &url::Url) {
        let mut jar = self.0.lock().expect("lock");
        for h in headers {
            let Ok(s) = h.to_str() else { continue };
            let mut parts = s.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-")
            });
            let (name, value) = (name.trim(), value.trim());
            if value.is_empty() || expired {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    fn cookies(&self, _url: &url::Url) -> Option<HeaderValue> {
        let jar = self.0.lock().expect("lock");
        if jar.is_empty() {
            return None;
        }
        let line = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&line).ok()
    }
}

struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
}

impl Browser {
    fn new() -> Browser {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build an HTTP client");
        Browser { client, jar }
    }
}

// ---------------------------------------------------------------------------------------------
// One journey

struct Ctx {
    public: String,
    issuer: String,
    fake: Arc<FakeOidc>,
    /// Held around `set_claims` + `GET /authorize` in the sign-up phase.
    signup_lock: tokio::sync::Mutex<()>,
    next_subject: AtomicU64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The fake signs in the user who signed up during the warm-up.
    Returning,
    /// Each journey gets a fresh upstream subject and email.
    SignUp,
}

const STEPS: [&str; 4] = [
    "1 GET login/browser (flow)",
    "2 POST provider (to upstream)",
    "3 GET upstream /authorize",
    "4 GET callback (session)",
];

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

/// Sends, reads the whole body (so the connection is reused) and returns status, headers, body.
async fn exchange(
    req: reqwest::RequestBuilder,
    what: &str,
) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
    let r = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = r.status();
    let headers = r.headers().clone();
    let body = r
        .bytes()
        .await
        .map_err(|e| format!("{what}: reading the body: {e}"))?;
    Ok((status, headers, body.to_vec()))
}

fn location(h: &reqwest::header::HeaderMap) -> String {
    h.get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn expect_redirect(req: reqwest::RequestBuilder, what: &str) -> Result<String> {
    let (status, headers, body) = exchange(req, what).await?;
    let to = location(&headers);
    if status != reqwest::StatusCode::SEE_OTHER || to.is_empty() {
        return Err(format!(
            "{what}: expected 303 with a Location, got {status}: {}",
            snippet(&body)
        ));
    }
    Ok(to)
}

/// One complete browser sign-in; returns the time of each of its four requests.
async fn journey(b: &Browser, ctx: &Ctx, kind: Kind) -> Result<[Duration; 4]> {
    b.jar.clear();
    let mut steps = [Duration::ZERO; 4];

    let t = Instant::now();
    let (status, _, body) = exchange(
        b.client
            .get(format!("{}/self-service/login/browser", ctx.public))
            .header(ACCEPT, "application/json"),
        "GET /self-service/login/browser",
    )
    .await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "GET /self-service/login/browser: expected 200, got {status}: {}",
            snippet(&body)
        ));
    }
    let flow: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("GET /self-service/login/browser: not JSON ({e})"))?;
    let action = flow["ui"]["action"]
        .as_str()
        .ok_or("the login flow has no ui.action")?
        .to_string();
    let csrf = flow["ui"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["attributes"]["name"] == "csrf_token"))
        .and_then(|n| n["attributes"]["value"].as_str())
        .ok_or("the login flow has no csrf_token node")?
        .to_string();
    steps[0] = t.elapsed();

    let t = Instant::now();
    let authorize = expect_redirect(
        b.client
            .post(&action)
            .form(&[("csrf_token", csrf.as_str()), ("provider", PROVIDER)]),
        "POST ui.action (provider)",
    )
    .await?;
    if !authorize.starts_with(&ctx.issuer) {
        return Err(format!(
            "POST ui.action (provider): sent to {authorize}, not to the upstream"
        ));
    }
    steps[1] = t.elapsed();

    let t = Instant::now();
    let callback = match kind {
        Kind::Returning => {
            expect_redirect(b.client.get(&authorize), "GET upstream /authorize").await?
        }
        Kind::SignUp => {
            let _one_at_a_time = ctx.signup_lock.lock().await;
            let n = ctx.next_subject.fetch_add(1, Ordering::Relaxed);
            ctx.fake.set_claims(
                format!("bench-signup-{n}"),
                claims_of(
                    &format!("bench.signup.{n}@example.com"),
                    &format!("Signup {n}"),
                ),
            );
            expect_redirect(b.client.get(&authorize), "GET upstream /authorize").await?
        }
    };
    if !callback.starts_with(&ctx.public) {
        return Err(format!(
            "the upstream sent the browser to {callback}, not to tessera"
        ));
    }
    steps[2] = t.elapsed();

    let t = Instant::now();
    let (status, headers, body) = exchange(b.client.get(&callback), "GET callback").await?;
    let prefix = format!("{SESSION_COOKIE}=");
    let session = headers.get_all(SET_COOKIE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with(';'))
        })
    });
    if status != reqwest::StatusCode::SEE_OTHER || !session {
        return Err(format!(
            "GET callback: expected 303 with a {SESSION_COOKIE} cookie, got {status} to `{}` without one{}",
            location(&headers),
            if body.is_empty() {
                String::new()
            } else {
                format!(": {}", snippet(&body))
            }
        ));
    }
    steps[3] = t.elapsed();
    Ok(steps)
}

// ---------------------------------------------------------------------------------------------
// Load runs

#[derive(Default)]
struct Run {
    elapsed: Duration,
    ok: u64,
    failures: u64,
    /// The earliest failure, with when it happened (time since the start of the run).
    first_error: Option<String>,
    /// Sorted.
    latencies: Vec<Duration>,
    /// Sorted, per step.
    steps: [Vec<Duration>; 4],
    cpu: Option<CpuDelta>,
}

#[derive(Default)]
struct TaskStats {
    ok: u64,
    failures: u64,
    first_error: Option<(Duration, String)>,
    latencies: Vec<Duration>,
    steps: [Vec<Duration>; 4],
}

impl Run {
    fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ok as f64 / s } else { 0.0 }
    }

    /// Nearest-rank percentile of the journey latencies.
    fn pct(&self, p: f64) -> Duration {
        pct(&self.latencies, p)
    }

    fn merge(elapsed: Duration, tasks: Vec<TaskStats>) -> Run {
        let mut r = Run {
            elapsed,
            ..Run::default()
        };
        let mut first: Option<(Duration, String)> = None;
        for t in tasks {
            r.ok += t.ok;
            r.failures += t.failures;
            r.latencies.extend(t.latencies);
            for (all, mine) in r.steps.iter_mut().zip(t.steps) {
                all.extend(mine);
            }
            if let Some(e) = t.first_error
                && first.as_ref().is_none_or(|f| e.0 < f.0)
            {
                first = Some(e);
            }
        }
        r.first_error = first.map(|(at, e)| format!("after {:.2}s: {e}", at.as_secs_f64()));
        r.latencies.sort_unstable();
        for s in &mut r.steps {
            s.sort_unstable();
        }
        r
    }

    fn print(&self, cores: usize) {
        println!(
            "  completed sign-ins: {} in {:.2}s = {:.0}/s",
            self.ok,
            self.elapsed.as_secs_f64(),
            self.rate()
        );
        println!(
            "  journey latency: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(self.pct(0.50)),
            ms(self.pct(0.90)),
            ms(self.pct(0.99)),
            ms(self.pct(1.0))
        );
        match &self.first_error {
            Some(e) => println!("  failures: {} (first {e})", self.failures),
            None => println!("  failures: 0"),
        }
        println!("  per request:                         p50        p99");
        for (name, s) in STEPS.iter().zip(&self.steps) {
            println!(
                "    {name:<32} {:>7.2} ms {:>7.2} ms",
                ms(pct(s, 0.50)),
                ms(pct(s, 0.99))
            );
        }
        if let Some(cpu) = &self.cpu {
            cpu.print(self.ok, self.elapsed, cores);
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run_journeys(
    ctx: &Arc<Ctx>,
    kind: Kind,
    duration: Duration,
    concurrency: usize,
    server: &Server,
) -> Run {
    let before = CpuSnapshot::take(server.pid);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let b = Browser::new();
                let mut s = TaskStats::default();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match journey(&b, &ctx, kind).await {
                        Ok(steps) => {
                            s.ok += 1;
                            s.latencies.push(t.elapsed());
                            for (all, one) in s.steps.iter_mut().zip(steps) {
                                all.push(one);
                            }
                        }
                        Err(e) => {
                            s.failures += 1;
                            if s.first_error.is_none() {
                                s.first_error = Some((t - start, e));
                            }
                        }
                    }
                }
                s
            })
        })
        .collect();
    let mut stats = Vec::with_capacity(concurrency);
    for t in tasks {
        stats.push(t.await.expect("a client task panicked"));
    }
    let elapsed = start.elapsed();
    let after = CpuSnapshot::take(server.pid);
    let mut run = Run::merge(elapsed, stats);
    run.cpu = Some(after.since(&before));
    run
}

/// `GET /health/alive` with the same clients: how many plain requests/s client + server reach.
async fn run_alive(ctx: &Arc<Ctx>, duration: Duration, concurrency: usize) -> Run {
    let start = Instant::now();
    let deadline = start + duration;
    let url = format!("{}/health/alive", ctx.public);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let b = Browser::new();
                let mut s = TaskStats::default();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match exchange(b.client.get(&url), "GET /health/alive").await {
                        Ok((status, _, _)) if status.is_success() => {
                            s.ok += 1;
                            s.latencies.push(t.elapsed());
                        }
                        Ok((status, _, body)) => {
                            s.failures += 1;
                            if s.first_error.is_none() {
                                s.first_error =
                                    Some((t - start, format!("{status}: {}", snippet(&body))));
                            }
                        }
                        Err(e) => {
                            s.failures += 1;
                            if s.first_error.is_none() {
                                s.first_error = Some((t - start, e));
                            }
                        }
                    }
                }
                s
            })
        })
        .collect();
    let mut stats = Vec::with_capacity(concurrency);
    for t in tasks {
        stats.push(t.await.expect("a client task panicked"));
    }
    Run::merge(start.elapsed(), stats)
}

/// Identities through the admin API, following the `Link: rel="next"` pages.
async fn count_identities(admin: &str) -> Result<u64> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let base = url::Url::parse(admin).map_err(|e| e.to_string())?;
    let mut next = Some(format!("{admin}/admin/identities?page_size=500"));
    let mut n = 0u64;
    while let Some(url) = next.take() {
        let r = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("GET {url}: {}", r.status()));
        }
        let link = r
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let page: Vec<Value> = r.json().await.map_err(|e| format!("GET {url}: {e}"))?;
        n += page.len() as u64;
        if page.is_empty() {
            break;
        }
        next = link
            .split(',')
            .find(|p| p.contains("rel=\"next\""))
            .and_then(|p| Some(p.split_once('<')?.1.split_once('>')?.0.to_string()))
            .and_then(|u| base.join(&u).ok())
            .map(|u| u.to_string());
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// The server under test

struct Server {
    child: Child,
    pid: u32,
    public: String,
    admin: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: a graceful stop, which also ends the mapper workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn config_yaml(o: &Opts, fake: &FakeOidc, dsn: &str, public_port: u16, admin_port: u16) -> String {
    let mapper = base64::engine::general_purpose::STANDARD.encode(MAPPER);
    let session = o
        .cache_ttl
        .as_deref()
        .map(|ttl| format!("session:\n  cache_ttl: \"{ttl}\"\n"))
        .unwrap_or_default();
    format!(
        r#"dsn: "{dsn}"
log:
  level: error
serve:
  public:
    host: 127.0.0.1
    port: {public_port}
    base_url: http://127.0.0.1:{public_port}/
  admin:
    host: 127.0.0.1
    port: {admin_port}
secrets:
  default:
    - "bench-social-secret-0123456789abcdef"
{session}# Every journey starts a flow from 127.0.0.1: the per-address limit would end the run.
limits:
  flows_per_address_per_minute: 100000000
selfservice:
  default_browser_return_url: https://app.example.com/home
  allowed_return_urls:
    - https://app.example.com/
  methods:
    oidc:
      enabled: true
      config:
        providers:
          - id: {PROVIDER}
            provider: generic
            label: Acme
            client_id: "{client_id}"
            client_secret: "{client_secret}"
            issuer_url: "{issuer}"
            mapper_url: "base64://{mapper}"
            scope: [email, profile]
  flows:
    registration:
      after:
        oidc:
          hooks:
            - hook: session
"#,
        client_id = fake.client_id(),
        client_secret = fake.client_secret(),
        issuer = fake.issuer(),
    )
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn start_server(o: &Opts, fake: &FakeOidc) -> Result<Server> {
    let dir = &o.workdir;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dsn = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
    let (public_port, admin_port) = (free_port()?, free_port()?);
    let config = dir.join("tessera.yml");
    std::fs::write(&config, config_yaml(o, fake, &dsn, public_port, admin_port))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;

    let out = Command::new(&o.tessera)
        .args(["migrate", "sql", "up", "-e", "--yes"])
        .env("DSN", &dsn)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", o.tessera.display()))?;
    if !out.status.success() {
        return Err(format!(
            "tessera migrate sql up failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    let log = dir.join("tessera.log");
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    // `taskset` execs the server, so the child's pid is the server's.
    let mut command = match &o.server_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(&o.tessera);
            c
        }
        None => Command::new(&o.tessera),
    };
    let child = command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("DSN", &dsn)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", o.tessera.display()))?;
    let mut server = Server {
        pid: child.id(),
        child,
        public: format!("http://127.0.0.1:{public_port}"),
        admin: format!("http://127.0.0.1:{admin_port}"),
        log,
    };

    // Wait for /health/ready with a plain blocking HTTP/1.0 request: no runtime needed.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if ready(public_port) {
            return Ok(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "tessera serve exited ({status}) before /health/ready answered 200:\n{}",
                tail(&server.log)
            ));
        }
        if Instant::now() > until {
            return Err(format!(
                "/health/ready did not answer 200 within 30 s:\n{}",
                tail(&server.log)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf[..got].starts_with(b"HTTP/1.1 200") || buf[..got].starts_with(b"HTTP/1.0 200")
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc: where the time goes, per process and per thread name.

/// utime + stime of `/proc/.../stat`, in clock ticks, and the command (thread) name.
fn stat_ticks(path: &Path) -> Option<(String, u32, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 1..].split_whitespace().collect();
    // After the comm: state(3) ppid(4) … utime(14) stime(15).
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((comm, ppid, ticks))
}

/// Per thread (tid → name, ticks) of a process.
fn threads(pid: &str) -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        if let Some((comm, _, ticks)) = stat_ticks(&e.path().join("stat")) {
            out.insert(tid, (comm, ticks));
        }
    }
    out
}

/// Child processes (the mapper workers) of `ppid`: pid → ticks.
fn children(ppid: u32) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((_, parent, ticks)) = stat_ticks(&e.path().join("stat"))
            && parent == ppid
        {
            out.insert(pid, ticks);
        }
    }
    out
}

fn clock_ticks_per_sec() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|n: &f64| *n > 0.0)
            .unwrap_or(100.0)
    })
}

/// Busy (not idle, not iowait) ticks of the whole machine, from the first line of `/proc/stat`.
fn machine_busy_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = s.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let total: u64 = f.iter().take(8).sum();
    total.saturating_sub(f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0))
}

struct CpuSnapshot {
    machine_busy: u64,
    server_total: u64,
    server_threads: HashMap<u32, (String, u64)>,
    mappers: HashMap<u32, u64>,
    bench_threads: HashMap<u32, (String, u64)>,
}

impl CpuSnapshot {
    fn take(server: u32) -> CpuSnapshot {
        CpuSnapshot {
            machine_busy: machine_busy_ticks(),
            server_total: stat_ticks(Path::new(&format!("/proc/{server}/stat"))).map_or(0, |t| t.2),
            server_threads: threads(&server.to_string()),
            mappers: children(server),
            bench_threads: threads("self"),
        }
    }

    fn since(&self, before: &CpuSnapshot) -> CpuDelta {
        let by_name = |now: &HashMap<u32, (String, u64)>, then: &HashMap<u32, (String, u64)>| {
            let mut m: BTreeMap<String, u64> = BTreeMap::new();
            for (tid, (name, t)) in now {
                let t0 = then.get(tid).map_or(0, |x| x.1);
                *m.entry(name.clone()).or_default() += t.saturating_sub(t0);
            }
            m
        };
        CpuDelta {
            machine_busy: self.machine_busy.saturating_sub(before.machine_busy),
            server_total: self.server_total.saturating_sub(before.server_total),
            server_threads: by_name(&self.server_threads, &before.server_threads),
            mappers: self
                .mappers
                .iter()
                .map(|(pid, t)| t.saturating_sub(before.mappers.get(pid).copied().unwrap_or(0)))
                .sum(),
            mapper_count: self.mappers.len(),
            bench_threads: by_name(&self.bench_threads, &before.bench_threads),
        }
    }
}

struct CpuDelta {
    machine_busy: u64,
    server_total: u64,
    server_threads: BTreeMap<String, u64>,
    mappers: u64,
    mapper_count: usize,
    bench_threads: BTreeMap<String, u64>,
}

impl CpuDelta {
    fn print(&self, journeys: u64, elapsed: Duration, cores: usize) {
        let hz = clock_ticks_per_sec();
        let secs = |t: u64| t as f64 / hz;
        let per = |t: u64| {
            if journeys == 0 {
                0.0
            } else {
                secs(t) * 1000.0 / journeys as f64
            }
        };
        let upstream = self.bench_threads.get("fake-oidc").copied().unwrap_or(0);
        let client = self.bench_threads.get("bench-client").copied().unwrap_or(0);
        let bench_other: u64 = self.bench_threads.values().sum::<u64>() - upstream - client;
        let total = self.server_total + self.mappers + upstream + client + bench_other;
        let avail = elapsed.as_secs_f64() * cores as f64;
        println!(
            "  CPU (from /proc, {hz:.0} Hz ticks): {:.1} s used of {:.1} s available ({:.0}%); per sign-in:",
            secs(total),
            avail,
            if avail > 0.0 {
                secs(total) * 100.0 / avail
            } else {
                0.0
            }
        );
        let line = |name: &str, t: u64| {
            println!("    {name:<44} {:>6.3} ms", per(t));
        };
        line("tessera serve (all threads)", self.server_total);
        let mut named: Vec<(&String, &u64)> = self.server_threads.iter().collect();
        named.sort_by(|a, b| b.1.cmp(a.1));
        let mut listed = 0;
        for (name, t) in named {
            if *t > 0 {
                line(&format!("  thread `{name}`"), *t);
                listed += *t;
            }
        }
        if self.server_total > listed {
            line(
                "  threads that exited meanwhile",
                self.server_total - listed,
            );
        }
        line(
            &format!("mapper workers ({} processes)", self.mapper_count),
            self.mappers,
        );
        line("fake upstream (`fake-oidc` threads)", upstream);
        line("client (`bench-client` threads)", client);
        if bench_other > 0 {
            line("bench, other threads", bench_other);
        }
        // Whatever else ran on the machine meanwhile (a build, another benchmark) took cores
        // from this run: the figures above are only comparable when this is near 0.
        let others = self.machine_busy.saturating_sub(total);
        println!(
            "  other processes on this machine used {:.1} s of CPU meanwhile ({:.0}% of the cores){}",
            secs(others),
            if avail > 0.0 {
                secs(others) * 100.0 / avail
            } else {
                0.0
            },
            if secs(others) > 0.1 * avail {
                ": the machine was not quiet, run again"
            } else {
                ""
            }
        );
    }
}
