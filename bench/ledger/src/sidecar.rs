//! A stock-sidecar process for a benchmark: started on a free port with a fresh database and its own tokens,
//! watched through /proc (peak RSS, CPU time), stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const API_TOKEN: &str = "bench-api-token-0123456789";
pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
pub const WEBHOOK_SECRET: &str = "whsec_bench_0123456789abcdef";

pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// A running sidecar and where to reach it.
#[derive(Debug)]
pub struct Sidecar {
    pub base: String,
    child: Child,
    _directory: tempfile::TempDir,
}

/// CPU time and memory of a process, from /proc.
#[derive(Debug, Clone, Copy)]
pub struct ProcessUsage {
    /// User plus system CPU time since the process started.
    pub cpu: Duration,
    /// Peak resident set size (VmHWM).
    pub peak_rss_kib: u64,
}

impl Sidecar {
    /// Starts `binary serve` with `settings` added to the environment, its database under `parent` (the disk the
    /// store limit is measured on), and waits until /readyz answers.
    pub async fn start(binary: &Path, parent: &Path, settings: &[(&str, &str)]) -> Result<Sidecar, BenchError> {
        let directory = tempfile::tempdir_in(parent)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(directory.path().join("sidecar.log"))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}", directory.path().join("ledger.db").display()))
            .env("SIDECAR_API_TOKEN", API_TOKEN)
            .env("ADMIN_API_TOKEN", ADMIN_TOKEN)
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("CLEANUP_INTERVAL_SECONDS", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in settings {
            command.env(key, value);
        }
        let child = command.spawn().map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let sidecar = Sidecar { base: format!("http://127.0.0.1:{port}"), child, _directory: directory };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(response) = client.get(format!("{}/readyz", sidecar.base)).send().await
                && response.status().is_success()
            {
                return Ok(sidecar);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("the sidecar did not become ready in 20 s; its log: {}", sidecar.log_path().display()).into())
    }

    pub fn log_path(&self) -> PathBuf {
        self._directory.path().join("sidecar.log")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's CPU time and peak RSS so far.
    pub fn usage(&self) -> Result<ProcessUsage, BenchError> {
        process_usage(self.pid())
    }

    /// SIGTERM, then waits for the process to finish its graceful shutdown.
    pub fn stop(mut self) -> Result<(), BenchError> {
        Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        // Only reached without stop() (a failed run): do not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (utime + stime, in clock ticks) and VmHWM of process `pid`.
pub fn process_usage(pid: u32) -> Result<ProcessUsage, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or("unreadable /proc stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here (state is field 3 -> index 0).
    let ticks: u64 =
        fields.get(11).ok_or("no utime")?.parse::<u64>()? + fields.get(12).ok_or("no stime")?.parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc status")?;
    Ok(ProcessUsage { cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()), peak_rss_kib })
}

/// CPU time of every PostgreSQL server process on this machine (the postmaster and its backends) so far.
pub fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "postgres"))
        .filter_map(|pid| process_usage(pid).ok())
        .map(|usage| usage.cpu)
        .sum()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The `p`th percentile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((p / 100.0) * sorted.len() as f64).floor() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
