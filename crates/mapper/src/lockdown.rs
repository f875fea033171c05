//! What a worker does to itself before it reads its first request: defense in depth under the
//! language sandbox (no imports, no `std.native`, only the `claims` external variable), for the
//! case where a jrsonnet bug lets a mapper run code of its own.
//!
//! In order ([`apply`]):
//!
//! 1. every file descriptor but stdin, stdout and stderr is closed (the server may hold
//!    descriptors without close-on-exec that it inherited itself), and one copy of stdout is
//!    made for the response frames;
//! 2. `no_new_privs`: nothing the worker could execute gains privileges (setuid, file caps);
//! 3. Landlock, where the kernel has it (5.13+ and enabled): no file or directory can be
//!    opened by path, not even under `/proc` (so not the server's `/proc/<pid>/environ`); from
//!    ABI 4 (6.7+) no TCP bind or connect; from ABI 6 (6.12+) no signals to processes outside
//!    the worker and no abstract UNIX sockets;
//! 4. resource limits: address space (`--memory-limit`), no core dumps, CPU time (see
//!    [`CPU_RETIRE_SECS`]) and file descriptors (exactly the ones it holds, so no new one can
//!    be opened);
//! 5. the parent watchdog thread, the worker's last thread;
//! 6. a seccomp filter, where the kernel has one (x86-64 and aarch64): no sockets, no new
//!    processes or threads, no `execve`, no `ptrace` or reading other processes' memory, no
//!    io_uring, bpf, perf events, keyrings or namespaces; the call fails with `EPERM`;
//! 7. `RLIMIT_NPROC` 0 (ignored by the kernel for uid 0: the seccomp filter covers that case),
//!    and every capability dropped (a worker of a server run as root is otherwise root with all
//!    of root's capabilities, including raising its own hard limits).
//!
//! Steps 1, 2, 4 and 7 are required: a worker that cannot take them exits (status 3) and the
//! evaluation fails as unavailable. Landlock and seccomp are best effort: on a kernel without
//! them (or a platform other than Linux, or in a container whose own seccomp profile refuses
//! the Landlock calls) the worker runs without them, silently; any other error setting them up
//! is printed on stderr and the worker runs without that layer. Without Landlock, code that
//! took over a worker could free a descriptor and read what the server's user can read,
//! including the server's `/proc/<pid>/environ`.
//!
//! `RLIMIT_FSIZE` is not set: the worker writes no file, but its stderr is the server's, and
//! when that is a regular file (`tessera serve 2>>log`) a limit of 0 would kill the worker with
//! `SIGXFSZ` at its first `std.trace` line. With no free descriptor and Landlock it cannot open
//! another file to write to anyway.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// CPU seconds after which a worker retires itself: `RLIMIT_CPU` counts a process's whole
/// life, and one worker serves evaluations for as long as it lives (hours, at full load), so a
/// limit alone would one day kill a healthy worker in the middle of some user's request.
/// Instead the worker asks to be replaced (the `retire` flag of its answer; the pool starts a
/// fresh one, and no request fails) once it has used this much CPU, and the limit
/// ([`CPU_SOFT_LIMIT_SECS`]) sits a minute above it. A request the worker starts below this
/// mark may use at most the pool's time limit (1 s) before the pool kills the worker, so a
/// healthy worker never reaches the limit; one the pool failed to stop (a bug in the driver,
/// or a parent that hangs without exiting) gets `SIGXCPU` after at most 11 minutes of CPU
/// instead of spinning forever. At full load on one core this is one new worker every 10
/// minutes, which costs a process start and resending the mapper sources to it.
pub(crate) const CPU_RETIRE_SECS: u64 = 600;

/// `RLIMIT_CPU` soft limit: `SIGXCPU`, which ends the worker.
pub(crate) const CPU_SOFT_LIMIT_SECS: u64 = CPU_RETIRE_SECS + 60;

/// `RLIMIT_CPU` hard limit: `SIGKILL`, should `SIGXCPU` not end it.
pub(crate) const CPU_HARD_LIMIT_SECS: u64 = CPU_SOFT_LIMIT_SECS + 5;

/// What [`apply`] set up.
pub(crate) struct Lockdown {
    /// Stdout's copy, for response frames.
    pub output: File,
    /// The Landlock ABI version in force, if any.
    #[cfg_attr(not(test), expect(dead_code, reason = "the worker needs no report"))]
    pub landlock: Option<u32>,
    /// Whether the seccomp filter is in force.
    #[cfg_attr(not(test), expect(dead_code, reason = "the worker needs no report"))]
    pub seccomp: bool,
}

/// Locks the calling process down (see the module documentation). Call it on the main thread
/// before any other thread exists: Landlock, seccomp and `no_new_privs` bind the calling thread
/// and the threads it starts afterwards, not threads that already run.
pub(crate) fn apply(memory_limit_bytes: u64) -> io::Result<Lockdown> {
    tune_allocator();
    // stacker (through which jrsonnet grows its stack) learns where the main thread's stack
    // ends from /proc/self/maps, the first time it is asked, and caches the answer. Asked now,
    // while that file can still be opened: failing that, it would allocate a fresh stack for
    // every evaluation.
    let _ = stacker::remaining_stack();
    close_inherited_fds()?;
    // Unbuffered: one write per response. (Stdout's own line buffering would split a frame
    // wherever its bytes happen to contain a newline.)
    let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    no_new_privs()?;
    let landlock = match landlock::restrict_self() {
        Ok(abi) => abi,
        Err(e) => {
            eprintln!("tessera mapper worker: running without Landlock: {e}");
            None
        }
    };
    set_limit(libc::RLIMIT_CORE, 0, 0)?;
    if memory_limit_bytes > 0 {
        set_limit(libc::RLIMIT_AS, memory_limit_bytes, memory_limit_bytes)?;
    }
    set_limit(libc::RLIMIT_CPU, CPU_SOFT_LIMIT_SECS, CPU_HARD_LIMIT_SECS)?;
    // Descriptors 0 to `output`: no new one can be opened.
    let nofile = output.as_raw_fd() as u64 + 1;
    set_limit(libc::RLIMIT_NOFILE, nofile, nofile)?;
    exit_with_parent();
    let seccomp = match seccomp::deny() {
        Ok(on) => on,
        Err(e) => {
            eprintln!("tessera mapper worker: running without a seccomp filter: {e}");
            false
        }
    };
    set_limit(libc::RLIMIT_NPROC, 0, 0)?;
    drop_capabilities()?;
    Ok(Lockdown {
        output,
        landlock,
        seccomp,
    })
}

/// Tells the worker when it has used [`CPU_RETIRE_SECS`] of CPU and should be replaced. Reads
/// the CPU clock (a system call, about 0.4 µs) at most once per second of wall-clock time (read
/// without one), which delays retiring by about a second of CPU at most.
pub(crate) struct CpuBudget {
    retire_after: Duration,
    next_check: Instant,
}

impl CpuBudget {
    pub(crate) fn retiring_after(retire_after: Duration) -> Self {
        CpuBudget {
            retire_after,
            next_check: Instant::now(),
        }
    }

    pub(crate) fn spent(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next_check {
            return false;
        }
        self.next_check = now + Duration::from_secs(1);
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec that outlives the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
            return false;
        }
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32) >= self.retire_after
    }
}

fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    // One arena: glibc reserves 64 MiB of address space per extra arena, which the address-space
    // limit would count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Closes every descriptor from 3 up.
fn close_inherited_fds() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range takes plain integers; no descriptor above 2 is in use by Rust code
        // at this point.
        if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0 {
            return Ok(());
        }
    }
    // Kernels before 5.9, and other systems: the descriptors the process holds.
    let dir = if std::path::Path::new("/proc/self/fd").is_dir() {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let fds: Vec<i32> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The directory's own descriptor is among them and already closed: EBADF, ignored.
    for fd in fds {
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

fn no_new_privs() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // Unsigned longs: the kernel refuses the call unless the unused arguments are 0 in all
        // 64 bits.
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, on, unused, unused, unused) } != 0 {
            return Err(io::Error::other(format!(
                "cannot set no_new_privs: {}",
                io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_os = "linux"))]
type Resource = libc::c_int;

fn set_limit(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(io::Error::other(format!(
            "cannot set resource limit {resource} to {soft}/{hard}: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// A worker stuck in a loop never reads its stdin again, so it would not notice its parent is
/// gone; this watchdog ends it when it is re-parented.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("parent-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if std::os::unix::process::parent_id() != parent {
                    // SAFETY: _exit ends the process at once, without running any Rust code that
                    // could observe the evaluation thread's state.
                    unsafe { libc::_exit(1) }
                }
            }
        });
}

/// Empties the effective, permitted and inheritable capability sets (the ambient set follows).
/// A no-op for an ordinary user, who has none.
fn drop_capabilities() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: libc::c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        let mut header = Header {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        // SAFETY: version 3 takes a header and two data structs, both valid for the call.
        if unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) }
            != 0
        {
            return Err(io::Error::other(format!(
                "cannot drop capabilities: {}",
                io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod landlock {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// `struct landlock_ruleset_attr`; the kernel reads the fields its ABI knows and requires
    /// the others to be 0.
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }

    const CREATE_RULESET_VERSION: u32 = 1;
    /// ABI 1: execute, write, read, read a directory, remove a directory or file, make a
    /// character device, directory, regular file, socket, FIFO, block device or symlink.
    const FS_ABI_1: u64 = (1 << 13) - 1;
    const FS_REFER: u64 = 1 << 13; // ABI 2
    const FS_TRUNCATE: u64 = 1 << 14; // ABI 3
    const FS_IOCTL_DEV: u64 = 1 << 15; // ABI 5
    const NET_BIND_TCP: u64 = 1 << 0; // ABI 4
    const NET_CONNECT_TCP: u64 = 1 << 1; // ABI 4
    const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0; // ABI 6
    const SCOPE_SIGNAL: u64 = 1 << 1; // ABI 6

    /// The ABI version the kernel offers, `None` without Landlock.
    pub(crate) fn abi() -> io::Result<Option<u32>> {
        // SAFETY: with CREATE_RULESET_VERSION the kernel reads no attribute.
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<RulesetAttr>(),
                0usize,
                CREATE_RULESET_VERSION,
            )
        };
        if abi >= 1 {
            return Ok(Some(abi as u32));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Not built into the kernel, or not enabled at boot; EPERM comes from a container's
            // seccomp profile (the kernel never refuses this query).
            Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM) => Ok(None),
            _ => Err(e),
        }
    }

    /// Denies every access right this ABI can restrict, with no exception: no rules. Rights of
    /// newer ABIs than this code knows stay allowed (Landlock's best-effort design).
    pub(super) fn restrict_self() -> io::Result<Option<u32>> {
        let Some(abi) = abi()? else {
            return Ok(None);
        };
        let mut attr = RulesetAttr {
            handled_access_fs: FS_ABI_1,
            handled_access_net: 0,
            scoped: 0,
        };
        if abi >= 2 {
            attr.handled_access_fs |= FS_REFER;
        }
        if abi >= 3 {
            attr.handled_access_fs |= FS_TRUNCATE;
        }
        if abi >= 4 {
            attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP;
        }
        if abi >= 5 {
            attr.handled_access_fs |= FS_IOCTL_DEV;
        }
        if abi >= 6 {
            attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL;
        }
        // SAFETY: `attr` is a valid ruleset_attr of the size given, alive for the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor, owned by nobody else.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        // SAFETY: plain integers. Allowed without privileges because no_new_privs is set.
        if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) }
            != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(abi))
    }
}

#[cfg(not(target_os = "linux"))]
mod landlock {
    #[cfg(test)]
    pub(crate) fn abi() -> std::io::Result<Option<u32>> {
        Ok(None)
    }

    pub(super) fn restrict_self() -> std::io::Result<Option<u32>> {
        Ok(None)
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod seccomp {
    use std::io;

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

    /// On x86-64, system call numbers with this bit set are x32 calls, with the same
    /// architecture tag: refused as a whole, or they would bypass the list.
    #[cfg(target_arch = "x86_64")]
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;

    /// System calls a worker never makes once it serves requests. A denylist rather than an
    /// allowlist: which calls glibc, std and jrsonnet make varies with their versions and the
    /// kernel, and a call missing from an allowlist would break every evaluation in production;
    /// nothing here is needed to evaluate Jsonnet.
    const DENIED: &[libc::c_long] = &[
        // Network (and UNIX sockets, such as a database's, which Landlock does not cover).
        libc::SYS_socket,
        // New programs, processes and threads (RLIMIT_NPROC does not bind uid 0).
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_clone,
        libc::SYS_clone3,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_fork,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_vfork,
        // Other processes' memory.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        // io_uring runs operations (open, socket, …) that a filter on system calls never sees.
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Kernel attack surface and the user's keyrings.
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_unshare,
        libc::SYS_setns,
    ];

    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u32, k: u32, jt: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt,
            jf: 0,
            k,
        }
    }

    /// A foreign architecture (32-bit calls on a 64-bit kernel), x32 calls and the denied calls
    /// fail with EPERM; everything else is allowed.
    fn program() -> Vec<libc::sock_filter> {
        use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
        let deny = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let mut checks: Vec<(u32, u32)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        checks.push((libc::BPF_JGE, X32_SYSCALL_BIT));
        checks.extend(DENIED.iter().map(|&nr| (BPF_JEQ, nr as u32)));
        let mut prog = vec![
            // seccomp_data.arch
            stmt(BPF_LD | BPF_W | BPF_ABS, 4),
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1),
            stmt(BPF_RET | BPF_K, deny),
            // seccomp_data.nr
            stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        ];
        let n = checks.len();
        for (i, (op, k)) in checks.into_iter().enumerate() {
            // On a match, skip the checks after this one and the final "allow".
            let skip = u8::try_from(n - i).unwrap_or(u8::MAX);
            prog.push(jump(BPF_JMP | op | BPF_K, k, skip));
        }
        prog.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
        prog.push(stmt(BPF_RET | BPF_K, deny));
        prog
    }

    /// Installs the filter on the calling thread (and the threads it starts later); `false`
    /// when the kernel has no seccomp filters.
    pub(super) fn deny() -> io::Result<bool> {
        let mut prog = program();
        let fprog = libc::sock_fprog {
            len: prog.len() as libc::c_ushort,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel copies them.
        // no_new_privs is set, which lets an unprivileged process install a filter.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // A kernel built without CONFIG_SECCOMP_FILTER.
            Some(libc::EINVAL) => Ok(false),
            _ => Err(e),
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod seccomp {
    pub(super) fn deny() -> std::io::Result<bool> {
        Ok(false)
    }
}

/// The Landlock ABI version this kernel offers (for tests: whether to expect it in force).
#[cfg(test)]
pub(crate) fn landlock_abi() -> Option<u32> {
    landlock::abi().ok().flatten()
}
