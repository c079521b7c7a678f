//! The stock-sidecar binary itself: its subcommands, its refusal of a bad configuration, and a graceful stop on
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_stock-sidecar");

fn sidecar(directory: &tempfile::TempDir) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("sqlite://{}", directory.path().join("ledger.db").display()))
        .env("RUST_LOG", "info");
    command
}

#[test]
fn stats_and_cleanup_print_what_they_found() {
    let directory = tempfile::tempdir().expect("temp dir");
    let stats = sidecar(&directory).arg("stats").output().expect("runs");
    assert!(stats.status.success(), "{stats:?}");
    let text = String::from_utf8_lossy(&stats.stdout);
    for line in ["active reservations      0", "open conflicts           0", "oldest active            none"] {
        assert!(text.contains(line), "{text}");
    }

    let cleanup = sidecar(&directory).arg("cleanup").output().expect("runs");
    assert!(cleanup.status.success(), "{cleanup:?}");
    assert!(String::from_utf8_lossy(&cleanup.stdout).contains("released 0 expired reservation(s)"));
}

#[test]
fn a_bad_configuration_stops_the_sidecar_with_every_problem_listed() {
    let directory = tempfile::tempdir().expect("temp dir");
    let output = sidecar(&directory)
        .env("LISTEN_ADDR", "nowhere")
        .env("ADMIN_API_TOKEN", "short")
        .env("STRIPE_WEBHOOK_SECRET", "not-a-secret")
        .arg("serve")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    for setting in ["LISTEN_ADDR", "ADMIN_API_TOKEN", "STRIPE_WEBHOOK_SECRET"] {
        assert!(message.contains(setting), "{message}");
    }
    assert!(!message.contains("short\""), "the token's value is not echoed: {message}");
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut child = sidecar(&directory)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let started = Instant::now();
    let listening = lines.by_ref().map_while(Result::ok).find(|line| line.contains("stock-sidecar listening"));
    assert!(listening.is_some(), "no 'listening' line within {:?}", started.elapsed());

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the sidecar did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|line| line.contains("stock-sidecar stopped")), "{rest:?}");
}
