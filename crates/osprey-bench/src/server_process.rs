//! A real `osprey serve` child process on free loopback ports, for benchmarks that measure the server as
//! users run it (its own process, its own memory).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct ServerProcess {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub query: SocketAddr,
    pub zipkin: SocketAddr,
    pub jaeger_http: SocketAddr,
}

/// `tcp` TCP and `udp` UDP ports free now and all different: each is held until all are chosen,
/// since the OS may hand out a just-closed port again.
fn free_ports(tcp: usize, udp: usize) -> anyhow::Result<(Vec<SocketAddr>, Vec<SocketAddr>)> {
    let listeners = (0..tcp)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let sockets = (0..udp)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<Result<_, _>>()?,
        sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<Result<_, _>>()?,
    ))
}

impl ServerProcess {
    /// Starts this same binary as `serve` on `data_dir` with `extra` flags, and waits until it is ready.
    pub async fn start(data_dir: &Path, extra: &[String]) -> anyhow::Result<ServerProcess> {
        let (tcp, udp) = free_ports(8, 2)?;
        let [grpc, http, query, tempo, sampling, zipkin, jaeger_http, jaeger_grpc] = tcp[..] else {
            bail!("eight TCP ports were asked for")
        };
        let [jaeger_compact, jaeger_binary] = udp[..] else {
            bail!("two UDP ports were asked for")
        };
        let mut command = Command::new(std::env::current_exe()?);
        // A benchmark stopped by a signal never drops this handle: the kernel then stops the
        // server, which would otherwise run on, orphaned, loading the machine. (The signal follows
        // the thread that started the server: start it from a runtime worker, never from a
        // blocking-pool thread, which ends when idle.)
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--otlp-grpc-addr", &grpc.to_string()])
            .args(["--otlp-http-addr", &http.to_string()])
            .args(["--query-addr", &query.to_string()])
            .args(["--tempo-addr", &tempo.to_string()])
            .args(["--sampling-addr", &sampling.to_string()])
            .args(["--zipkin-addr", &zipkin.to_string()])
            .args(["--jaeger-http-addr", &jaeger_http.to_string()])
            .args(["--jaeger-grpc-addr", &jaeger_grpc.to_string()])
            .args(["--jaeger-compact-addr", &jaeger_compact.to_string()])
            .args(["--jaeger-binary-addr", &jaeger_binary.to_string()])
            .args(extra)
            .env("OSPREY_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .context("starting the osprey server")?;
        let mut server = ServerProcess {
            child,
            grpc,
            http,
            query,
            zipkin,
            jaeger_http,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = crate::client::get(&format!("http://{query}/ready")).await {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("the server exited while starting: {status}");
            }
            if Instant::now() > deadline {
                bail!("the server did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU time the server has used so far (user + system, all threads).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        memory_bytes(self.child.id(), "VmHWM:")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the server gets no chance to flush or finish anything.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// A memory figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in bytes.
pub fn memory_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/<pid>/status"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("malformed {field} line"))?
        .parse()?;
    Ok(kib * 1024)
}

/// Bytes of every file below `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of a process, from its `/proc/<pid>/stat` (fields 14 and 15, in the kernel's
/// fixed 100 Hz user-visible clock ticks).
pub fn cpu_time(stat_path: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(stat_path)?;
    // The command name (field 2) may contain spaces; the fields after it start past its ')'.
    let after_name = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}
