//! Log lines batched in memory and written to stderr by a thread of its own.
//!
//! Why not `tracing_appender::non_blocking` (used before): it sends every line through a
//! channel, and whenever its thread has caught up and sleeps, the next line wakes it with a
//! system call and a context switch. Under load that was one wake-up per request (the request
//! log writes one line each), a large part of what the request log cost whoami
//! (bench/README.md). Here a line is appended to a buffer under a mutex; only a line that finds
//! the buffer empty wakes the thread, which then lingers [`LINGER`] to collect a batch, so a
//! busy server pays about one wake-up per batch instead of one per line.
//!
//! Nothing is dropped: when the thread falls [`MAX_PENDING`] bytes behind, the line's own
//! request writes the batch out itself (and so slows down) rather than losing audit lines.
//! Lines stay in order: whoever writes holds the output lock and writes everything pending.
//! A `kill -9` loses at most the last [`LINGER`] of lines; an orderly exit writes everything
//! ([`LogGuard`]).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long the writer thread waits after a wake-up before writing, to let a batch build up.
/// Also the longest a line waits before it reaches stderr.
pub(crate) const LINGER: Duration = Duration::from_millis(20);

/// Bytes pending before a request writes the batch itself.
pub(crate) const MAX_PENDING: usize = 1 << 20;

struct Shared<W> {
    pending: Mutex<Pending>,
    wake: Condvar,
    out: Mutex<W>,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain bytes behind; keep logging.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write> Shared<W> {
    /// Writes whatever is pending, in order: the output lock is taken first, so a batch taken
    /// earlier is always written before one taken later.
    fn write_pending(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut lock(&self.pending).buf);
        if !batch.is_empty() {
            // stderr gone (a closed pipe): there is nowhere left to say so.
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }
}

/// The [`tracing_subscriber::fmt::MakeWriter`] for the log: cheap to clone, one per subscriber.
#[derive(Clone)]
pub(crate) struct LogWriter<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

/// Writes out what is pending and stops the thread when dropped.
#[must_use = "the log lines still pending are lost when this is dropped"]
pub(crate) struct LogGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<W: Write + Send + 'static> Drop for LogGuard<W> {
    fn drop(&mut self) {
        lock(&self.shared.pending).closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.write_pending();
    }
}

/// A writer over `out` and the guard that owns its thread. Fails only when the thread cannot
/// be started.
pub(crate) fn log_writer<W: Write + Send + 'static>(
    out: W,
) -> std::io::Result<(LogWriter<W>, LogGuard<W>)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        out: Mutex::new(out),
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("tessera-log".into())
        .spawn(move || {
            loop {
                {
                    let mut p = lock(&worker.pending);
                    while p.buf.is_empty() && !p.closed {
                        p = worker.wake.wait(p).unwrap_or_else(PoisonError::into_inner);
                    }
                    if p.closed {
                        return;
                    }
                }
                std::thread::sleep(LINGER);
                worker.write_pending();
            }
        })?;
    Ok((
        LogWriter {
            shared: shared.clone(),
        },
        LogGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// One line's writer (the fmt layer formats a whole line, then writes it in one call).
pub(crate) struct LineWriter<'a, W: Write> {
    shared: &'a Shared<W>,
}

impl<W: Write> Write for LineWriter<'_, W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut p = lock(&self.shared.pending);
        let was_empty = p.buf.is_empty();
        p.buf.extend_from_slice(line);
        let behind = p.buf.len() >= MAX_PENDING;
        drop(p);
        if behind {
            self.shared.write_pending();
        } else if was_empty {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// A shared byte sink, to read what reached "stderr".
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(s: &Sink) -> String {
        String::from_utf8(lock(&s.0).clone()).expect("utf-8")
    }

    #[test]
    fn lines_arrive_in_order_after_the_linger_and_all_of_them_at_drop() {
        let sink = Sink::default();
        let (w, guard) = log_writer(sink.clone()).expect("thread");
        w.make_writer().write_all(b"one\n").expect("write");
        w.make_writer().write_all(b"two\n").expect("write");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while text(&sink).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(text(&sink), "one\ntwo\n", "written by the thread, in order");
        w.make_writer().write_all(b"three\n").expect("write");
        drop(guard);
        assert_eq!(
            text(&sink),
            "one\ntwo\nthree\n",
            "the guard writes what is pending"
        );
    }

    #[test]
    fn many_threads_lose_no_line_and_a_full_buffer_is_written_by_the_caller() {
        let sink = Sink::default();
        let (w, guard) = log_writer(sink.clone()).expect("thread");
        let line = vec![b'x'; 999];
        std::thread::scope(|s| {
            for t in 0..4 {
                let (w, line) = (w.clone(), line.clone());
                s.spawn(move || {
                    for i in 0..2_000 {
                        let mut l = format!("{t}:{i}:").into_bytes();
                        l.extend_from_slice(&line);
                        l.push(b'\n');
                        w.make_writer().write_all(&l).expect("write");
                    }
                });
            }
        });
        // 8 MB were written in less time than the thread's linger lets it write them: the
        // callers wrote batches themselves, so nothing above the cap waited in memory.
        assert!(lock(&w.shared.pending).buf.len() < MAX_PENDING + 2_000);
        drop(guard);
        let out = text(&sink);
        assert_eq!(out.lines().count(), 8_000);
        for t in 0..4 {
            let seq: Vec<usize> = out
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t}:")))
                .map(|l| l.split(':').next().and_then(|n| n.parse().ok()).expect("n"))
                .collect();
            assert_eq!(
                seq,
                (0..2_000).collect::<Vec<_>>(),
                "thread {t}'s lines in order"
            );
        }
    }
}
