//! Workers as the pool spawns them, observed from outside through `/proc`: their environment,
//! `no_new_privs`, capabilities, seccomp, resource limits and descriptors; and that a
//! locked-down worker still evaluates, times out and dies of its memory limit as before.
//!
//! The worker program is this test binary itself: started with the worker's arguments
//! (`__mapper-worker --memory-limit … --output-cap …`) it calls `run_worker` first thing, as
//! the `tessera` binary does, so the pool, the spawn and the worker are the real ones without
//! building the server. Hence `harness = false`: libtest would refuse those arguments.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tessera_mapper::{
    Mapper, MapperError, MapperPool, PoolConfig, run_worker_retiring_after, worker_args,
};

/// Set in this process before any worker starts; no worker may see it.
const SECRET_VAR: &str = "TESSERA_TEST_SECRET";
const SECRET_VALUE: &str = "dsn-password-must-not-reach-workers";

/// Starts this binary as a process that prints the environment it was started with.
const PRINT_ENVIRON: &str = "__print-own-environ";

/// A worker argument of this test only: the CPU time after which the worker retires.
const RETIRE_AFTER_CPU_MS: &str = "--retire-after-cpu-ms";

/// A descriptor this process holds without close-on-exec, so every worker inherits it unless it
/// closes it.
const LEAKED_FD: RawFd = 50;

const GITHUB: &str = r#"local claims = {
  email_verified: false,
} + std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
    },
    metadata_public: {
      github_username: claims.username,
    }
  },
}
"#;

/// Runs for minutes: a billion additions, in constant memory and at constant stack depth.
const ENDLESS: &str = "{ a: std.foldl(function(acc, x) acc + x, std.range(1, 1000000000), 0) }";

type Test = fn() -> Pin<Box<dyn Future<Output = ()>>>;

const TESTS: &[(&str, Test)] = &[
    ("the_worker_sees_no_environment", || {
        Box::pin(the_worker_sees_no_environment())
    }),
    (
        "the_worker_has_no_new_privs_no_capabilities_and_a_seccomp_filter",
        || Box::pin(the_worker_has_no_new_privs_no_capabilities_and_a_seccomp_filter()),
    ),
    ("the_worker_runs_under_its_resource_limits", || {
        Box::pin(the_worker_runs_under_its_resource_limits())
    }),
    (
        "the_worker_holds_only_its_pipes_and_the_servers_stderr",
        || Box::pin(the_worker_holds_only_its_pipes_and_the_servers_stderr()),
    ),
    ("a_locked_down_worker_still_evaluates_real_work", || {
        Box::pin(a_locked_down_worker_still_evaluates_real_work())
    }),
    ("time_and_memory_limits_still_replace_the_worker", || {
        Box::pin(time_and_memory_limits_still_replace_the_worker())
    }),
    (
        "workers_that_spent_their_cpu_budget_are_replaced_and_no_request_fails",
        || Box::pin(workers_that_spent_their_cpu_budget_are_replaced_and_no_request_fails()),
    ),
];

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first() == worker_args().first() {
        return worker_main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == PRINT_ENVIRON) {
        return print_own_environ();
    }
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var(SECRET_VAR, SECRET_VALUE) };
    leak_an_inheritable_fd();

    let args: Vec<String> = args
        .iter()
        .filter_map(|a| a.to_str().map(str::to_owned))
        .collect();
    // libtest's command line, as cargo test and cargo-nextest use it. None of these tests is
    // ignored, so `--ignored` selects none.
    let ignored_only = args.iter().any(|a| a == "--ignored");
    if args.iter().any(|a| a == "--list") {
        if !ignored_only {
            for (name, _) in TESTS {
                println!("{name}: test");
            }
        }
        return ExitCode::SUCCESS;
    }
    let filters = filters(&args);
    let exact = args.iter().any(|a| a == "--exact");
    let selected: Vec<_> = TESTS
        .iter()
        // The tests read /proc.
        .filter(|_| !ignored_only && cfg!(target_os = "linux"))
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();

    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plural = if selected.len() == 1 { "" } else { "s" };
    println!("\nrunning {} test{plural}", selected.len());
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(test())));
        println!(
            "test {name} ... {}",
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if result.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for name in failed {
            println!("    {name}");
        }
        ExitCode::from(101)
    }
}

/// Name filters among libtest-style arguments (flags, and the values of those that take one,
/// are not filters).
fn filters(args: &[String]) -> Vec<String> {
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--skip",
        "--format",
        "--color",
        "--logfile",
        "-Z",
    ];
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if a.starts_with('-') {
            skip_next = WITH_VALUE.contains(&a.as_str());
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// What the `tessera` binary's hidden `__mapper-worker` subcommand does (`run_worker`), and
/// with [`RETIRE_AFTER_CPU_MS`] a worker with a smaller CPU budget.
fn worker_main(args: &[OsString]) -> ExitCode {
    let mut memory_limit: u64 = 256 * 1024 * 1024;
    let mut output_cap: usize = 256 * 1024;
    // run_worker's.
    let mut cpu_budget = Duration::from_secs(600);
    let mut args = args.iter().filter_map(|a| a.to_str());
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag, value) {
            ("--memory-limit", Some(v)) => memory_limit = v,
            ("--output-cap", Some(v)) => output_cap = v as usize,
            (RETIRE_AFTER_CPU_MS, Some(v)) => cpu_budget = Duration::from_millis(v),
            _ => {
                eprintln!("worker_lockdown test worker: bad arguments");
                return ExitCode::from(2);
            }
        }
    }
    run_worker_retiring_after(memory_limit, output_cap, cpu_budget)
}

fn print_own_environ() -> ExitCode {
    use std::io::Write;
    match std::fs::read("/proc/self/environ") {
        Ok(environ) if std::io::stdout().write_all(&environ).is_ok() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn leak_an_inheritable_fd() {
    // SAFETY: plain system calls on descriptors this process owns; the copy is deliberately
    // kept open, without FD_CLOEXEC, for the whole run.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        assert!(null >= 0, "open /dev/null");
        assert_eq!(libc::dup2(null, LEAKED_FD), LEAKED_FD, "dup2");
        libc::close(null);
        assert_eq!(libc::fcntl(LEAKED_FD, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
    }
}

fn config() -> PoolConfig {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cfg = PoolConfig::new(exe, worker_args());
    cfg.workers = 1;
    cfg
}

/// For tests of what a worker may do, not of how long it may take: a debug-build worker on a
/// loaded machine may need more than the production second.
fn pool() -> MapperPool {
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(20);
    MapperPool::new(cfg)
}

fn mapper(source: &str) -> Mapper {
    match Mapper::compile("test mapper", source) {
        Ok(m) => m,
        Err(e) => panic!("expected the mapper to compile: {e}"),
    }
}

fn seed_claims() -> Value {
    json!({"sub": "some-identity-id-4hA8gk", "email": "foo@ory.sh", "email_verified": true, "username": "foo-user"})
}

fn seed_output() -> Value {
    json!({"identity": {"traits": {"email": "foo@ory.sh"}, "metadata_public": {"github_username": "foo-user"}}})
}

async fn assert_healthy(pool: &MapperPool) {
    let out = pool
        .evaluate(&mapper(GITHUB), &seed_claims())
        .await
        .expect("a healthy pool evaluates the seed mapper");
    assert_eq!(out, seed_output());
}

/// Live (not zombie) worker processes this process started.
fn live_workers() -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let is_worker = cmdline.split(|&b| b == 0).nth(1).is_some_and(|arg| {
                worker_args()
                    .first()
                    .is_some_and(|w| w.as_encoded_bytes() == arg)
            });
            ppid == Some(me) && state != Some("Z") && is_worker
        })
        .collect()
}

/// Starts the pool's one worker (by evaluating a mapper) and returns its pid, once the workers
/// of earlier tests are gone.
async fn spawned_worker(pool: &MapperPool) -> u32 {
    assert_healthy(pool).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let workers = live_workers();
        if let [pid] = workers[..] {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "expected exactly one live worker, found {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_no_live_worker() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let workers = live_workers();
        if workers.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected no live worker, found {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The value of a `Name:\tvalue` line of `/proc/<pid>/status`.
fn status_field(status: &str, name: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim().to_owned())
    })
}

async fn the_worker_sees_no_environment() {
    // Control: a process this one starts the ordinary way is started with the secret.
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .arg(PRINT_ENVIRON)
        .output()
        .expect("a child process");
    let needle = format!("{SECRET_VAR}={SECRET_VALUE}");
    assert!(
        out.stdout
            .split(|&b| b == 0)
            .any(|v| v == needle.as_bytes()),
        "an ordinary child should see {SECRET_VAR}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let pool = pool();
    let pid = spawned_worker(&pool).await;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the worker's environ");
    let text = String::from_utf8_lossy(&environ);
    assert!(
        !text.contains(SECRET_VALUE),
        "the worker sees the secret: {text}"
    );
    assert!(
        environ.is_empty(),
        "the worker's environment is not empty: {text:?}"
    );
}

async fn the_worker_has_no_new_privs_no_capabilities_and_a_seccomp_filter() {
    let own = read("/proc/self/status");
    let pool = pool();
    let pid = spawned_worker(&pool).await;
    let status = read(&format!("/proc/{pid}/status"));
    // Control: the worker set it itself, it did not inherit it.
    assert_eq!(
        status_field(&own, "NoNewPrivs").as_deref(),
        Some("0"),
        "{own}"
    );
    assert_eq!(
        status_field(&status, "NoNewPrivs").as_deref(),
        Some("1"),
        "{status}"
    );
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        let value = status_field(&status, set)
            .unwrap_or_else(|| panic!("no {set} in the worker's status: {status}"));
        assert_eq!(
            u64::from_str_radix(&value, 16),
            Ok(0),
            "{set} {value}: {status}"
        );
    }
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
        && status_field(&own, "Seccomp").is_some()
    {
        assert_eq!(status_field(&own, "Seccomp").as_deref(), Some("0"), "{own}");
        // 2: SECCOMP_MODE_FILTER.
        assert_eq!(
            status_field(&status, "Seccomp").as_deref(),
            Some("2"),
            "{status}"
        );
    } else {
        eprintln!("no seccomp on this platform: the worker's filter is not checked");
    }
}

/// `/proc/<pid>/limits`: "Max cpu time" → (soft, hard).
fn limits(pid: u32) -> BTreeMap<String, (String, String)> {
    let text = read(&format!("/proc/{pid}/limits"));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            // Columns: a name of up to 25 characters, then soft, hard and the unit.
            let (name, rest) = line.split_at_checked(26)?;
            let mut values = rest.split_whitespace();
            Some((
                name.trim().to_owned(),
                (values.next()?.to_owned(), values.next()?.to_owned()),
            ))
        })
        .collect()
}

async fn the_worker_runs_under_its_resource_limits() {
    let pool = pool();
    let pid = spawned_worker(&pool).await;
    let limits = limits(pid);
    let expect = |name: &str, soft: &str, hard: &str| {
        assert_eq!(
            limits.get(name),
            Some(&(soft.to_owned(), hard.to_owned())),
            "{name} in {limits:#?}"
        );
    };
    // 600 s of CPU retire it; SIGXCPU a minute later, SIGKILL 5 s after that.
    expect("Max cpu time", "660", "665");
    // Descriptors 0 to 3: stdin, stdout, stderr and its copy of stdout.
    expect("Max open files", "4", "4");
    expect("Max processes", "0", "0");
    expect("Max core file size", "0", "0");
    let memory = (256 * 1024 * 1024).to_string();
    expect("Max address space", &memory, &memory);
}

async fn the_worker_holds_only_its_pipes_and_the_servers_stderr() {
    // Control: the leaked descriptor is open here without close-on-exec, so it reaches the
    // worker's exec.
    // SAFETY: F_GETFD on a descriptor number reads flags only.
    let flags = unsafe { libc::fcntl(LEAKED_FD, libc::F_GETFD) };
    assert!(flags >= 0 && flags & libc::FD_CLOEXEC == 0, "flags {flags}");
    let pool = pool();
    let pid = spawned_worker(&pool).await;
    let link = |fd: &str| {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .unwrap_or_else(|e| panic!("fd {fd} of the worker: {e}"))
    };
    let fds: BTreeSet<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the worker's descriptors")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    assert_eq!(fds, BTreeSet::from([0, 1, 2, 3]));
    // Frames go out through a copy of the stdout pipe; stderr is this process's own.
    assert_eq!(link("3"), link("1"));
    assert_eq!(
        link("2"),
        std::fs::read_link("/proc/self/fd/2").expect("own stderr")
    );
}

async fn a_locked_down_worker_still_evaluates_real_work() {
    let pool = pool();
    assert_healthy(&pool).await;
    let traced =
        mapper("{ a: std.trace('worker_lockdown test: std.trace reaches stderr', 41) + 1 }");
    assert_eq!(
        pool.evaluate(&traced, &json!({})).await.expect("evaluates"),
        json!({"a": 42})
    );
    // jrsonnet's own stack limit, reached on stacks it grows through stacker.
    let recursive = mapper("local f(x) = if x == 0 then 0 else 1 + f(x - 1); { a: f(100000) }");
    match pool.evaluate(&recursive, &json!({})).await {
        Err(MapperError::Runtime { message, .. }) => {
            assert!(message.contains("stack overflow"), "{message}")
        }
        other => panic!("expected a stack overflow error, got {other:?}"),
    }
    // Parsed and evaluated on the worker's large stack.
    let deep = mapper(&format!("{{ a: {}1 }}", "-".repeat(19_000)));
    assert_eq!(
        pool.evaluate(&deep, &json!({})).await.expect("evaluates"),
        json!({"a": 1})
    );
    // A 50 MB string fits in the address-space limit.
    let big = mapper(
        "local s = std.join('', std.makeArray(1000, function(i) std.repeat('x', 50000)));\n{ n: std.length(s) }",
    );
    assert_eq!(
        pool.evaluate(&big, &json!({}))
            .await
            .expect("fits in 256 MiB"),
        json!({"n": 50_000_000})
    );
    assert_healthy(&pool).await;
}

async fn time_and_memory_limits_still_replace_the_worker() {
    let pool = MapperPool::new(config());
    assert_healthy(&pool).await;
    match pool.evaluate(&mapper(ENDLESS), &json!({})).await {
        Err(MapperError::Timeout { limit, .. }) => assert_eq!(limit, Duration::from_secs(1)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_healthy(&pool).await;
    let hog = mapper(
        "local mb = std.repeat('x', 1000000);\n{ n: std.length(std.join('', std.makeArray(1000000, function(i) mb))) }",
    );
    // Usually the address-space limit kills the worker first (SIGABRT); on a loaded machine
    // the 1 s time limit can win the race.
    match pool.evaluate(&hog, &json!({})).await {
        Err(MapperError::ResourceLimit { detail, .. }) => {
            assert!(detail.contains("SIGABRT"), "{detail}")
        }
        Err(MapperError::Timeout { .. }) => {}
        other => panic!("expected ResourceLimit (or Timeout under load), got {other:?}"),
    }
    assert_healthy(&pool).await;
}

async fn workers_that_spent_their_cpu_budget_are_replaced_and_no_request_fails() {
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(20);
    // Every worker retires after its first answer.
    cfg.args.extend([RETIRE_AFTER_CPU_MS.into(), "0".into()]);
    // Control: a worker with the production budget is still there after it answered.
    let control = pool();
    spawned_worker(&control).await;
    drop(control);
    wait_for_no_live_worker().await;
    let one = MapperPool::new(cfg.clone());
    for _ in 0..3 {
        assert_healthy(&one).await;
        // Gone after its answer: it asked to retire, and the pool let it go.
        wait_for_no_live_worker().await;
    }
    drop(one);
    // Requests pipelined behind a retiring worker move to another one.
    cfg.workers = 2;
    let two = MapperPool::new(cfg);
    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let pool = two.clone();
        answers.spawn(async move { pool.evaluate(&mapper(GITHUB), &seed_claims()).await });
    }
    while let Some(answer) = answers.join_next().await {
        let answer = answer.expect("the task ends");
        assert_eq!(answer.expect("evaluates"), seed_output());
    }
}
