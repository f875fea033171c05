//! Figures of one scenario: requests, acknowledged, errors by kind, latency percentiles and
//! what was lost. Shared by the load workers behind a mutex (tens of requests per second: the
//! lock is never contended enough to matter).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a request ended, as the suite counts it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The server acknowledged it (the status the operation expects).
    Ok,
    /// An answer with another status: `503` etc.
    Status(u16),
    /// A browser journey that ended on the hosted error page (a redirect to `/ui/error`).
    ErrorPage,
    /// No answer: connection refused or reset (the server was killed), or the client's
    /// deadline passed.
    Transport(&'static str),
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Status(s) => format!("http {s}"),
            Outcome::ErrorPage => "error page".into(),
            Outcome::Transport(t) => (*t).to_string(),
        }
    }

    /// The kind of a reqwest failure.
    pub fn of_error(e: &reqwest::Error) -> Outcome {
        Outcome::Transport(if e.is_timeout() {
            "client timeout"
        } else if e.is_connect() {
            "connect refused"
        } else {
            "connection lost"
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: u64,
    by_outcome: BTreeMap<String, u64>,
    by_op: BTreeMap<&'static str, (u64, u64)>,
    latencies_ms: Vec<f64>,
    /// Latencies of failed answers (how fast a failure comes back).
    failure_latencies_ms: Vec<f64>,
}

/// A shared tally.
#[derive(Debug, Clone, Default)]
pub struct Stats(Arc<Mutex<Inner>>);

impl Stats {
    pub fn record(&self, op: &'static str, outcome: &Outcome, took: Duration) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.requests += 1;
        *s.by_outcome.entry(outcome.label()).or_default() += 1;
        let entry = s.by_op.entry(op).or_default();
        entry.0 += 1;
        let ms = took.as_secs_f64() * 1000.0;
        if *outcome == Outcome::Ok {
            entry.1 += 1;
            s.latencies_ms.push(ms);
        } else {
            s.failure_latencies_ms.push(ms);
        }
    }

    pub fn acknowledged(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_op
            .values()
            .map(|(_, ok)| ok)
            .sum()
    }

    /// Requests recorded, acknowledged or not.
    pub fn requests(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).requests
    }

    /// The `q` quantile of acknowledged requests' latencies, in ms.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        percentile(
            &self
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .latencies_ms,
            q,
        )
    }

    /// How many answers had `label` (see [`Outcome::label`]).
    pub fn count(&self, label: &str) -> u64 {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.by_outcome.get(label).copied().unwrap_or(0)
    }

    /// The figures as printed lines.
    pub fn report(&self, seconds: f64) -> String {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let ok: u64 = s.by_op.values().map(|(_, ok)| ok).sum();
        let mut out = format!(
            "  requests {} in {:.1} s ({:.1}/s), acknowledged {}, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            s.requests,
            seconds,
            s.requests as f64 / seconds.max(0.001),
            ok,
            percentile(&s.latencies_ms, 0.50),
            percentile(&s.latencies_ms, 0.99),
            percentile(&s.latencies_ms, 1.0),
        );
        out += "  by operation (sent/acknowledged):";
        for (op, (n, ok)) in &s.by_op {
            out += &format!(" {op} {n}/{ok};");
        }
        out += "\n  outcomes:";
        for (k, n) in &s.by_outcome {
            out += &format!(" {k} {n};");
        }
        if !s.failure_latencies_ms.is_empty() {
            out += &format!(
                "\n  failures answered in: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                percentile(&s.failure_latencies_ms, 0.50),
                percentile(&s.failure_latencies_ms, 0.99),
                percentile(&s.failure_latencies_ms, 1.0),
            );
        }
        out
    }
}

/// The `q` quantile (0..=1) by nearest rank; 0 for no samples.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The resident memory of a process in KiB (`VmRSS`), when Linux says.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The number of open file descriptors of a process, when Linux says.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }

    #[test]
    fn failures_are_counted_by_kind_and_not_as_acknowledged() {
        let s = Stats::default();
        s.record("login", &Outcome::Ok, Duration::from_millis(5));
        s.record("login", &Outcome::Status(503), Duration::from_millis(1));
        s.record(
            "signup",
            &Outcome::Transport("connect refused"),
            Duration::ZERO,
        );
        assert!(s.report(1.0).contains("requests 3 in"));
        assert_eq!(s.acknowledged(), 1);
        assert_eq!(s.count("http 503"), 1);
        assert_eq!(s.count("connect refused"), 1);
        assert!(s.report(1.0).contains("login 2/1"));
    }
}
