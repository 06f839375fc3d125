//! How fast `kalam` is ready: start to prompt in a terminal, and the wall time of
//! `kalam -c 'SELECT 1'`, against the real server on loopback.
//!
//! `cargo bench -p kalamdb-cli --bench startup` (release `kalam`). The server binary is the
//! tests' (`target/<profile>/kalamdb-server`, built if missing); point `KALAMDB_SERVER_BIN` at
//! a release server to keep the server's share realistic. The server runs with
//! `--bcrypt-cost 4`, so `--user` pays little for its password check (cost 12, the default,
//! adds one bcrypt verification on the server, about 0.2 s).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Home, ROOT_PASSWORD, TestServer, run};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const RUNS: usize = 30;

/// Milliseconds from spawning `kalam` in a pseudo-terminal to its prompt on the screen.
fn start_to_prompt(mut cmd: std::process::Command, prompt: &str) -> f64 {
    cmd.env("TERM", "xterm");
    let started = Instant::now();
    let process = rexpect::process::PtyProcess::new(cmd).expect("start kalam in a pty");
    let mut pty = process.get_file_handle().expect("pty");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = pty.try_clone().expect("pty reader");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let elapsed = loop {
        let chunk = rx.recv_timeout(Duration::from_secs(30)).expect("the prompt within 30 s");
        seen.extend(chunk);
        if String::from_utf8_lossy(&seen).contains(prompt) {
            break started.elapsed();
        }
    };
    pty.write_all(b"\\q\r").expect("quit");
    let _ = process.wait();
    elapsed.as_secs_f64() * 1000.0
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name:<44} p50 {:>6.1} ms   min {:>6.1} ms   max {:>6.1} ms   ({} runs)",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
}

fn main() {
    let server = TestServer::start();
    let home = Home::new();
    // A profile, as a returning user has: signs in with its refresh token, no password.
    let mut save = server.kalam(&home);
    save.args(["--user", "root", "--save-profile", "bench", "-c", "SELECT 1"]).env("KALAM_PASSWORD", ROOT_PASSWORD);
    assert_eq!(run(save, "").code, 0, "saving the profile");
    let token = server.token("root", ROOT_PASSWORD);
    let prompt = format!("root@{}> ", server.host());

    let kalam = || {
        let mut cmd = common::kalam(&home);
        cmd.env_remove("KALAM_URL");
        cmd
    };
    let profile = || {
        let mut cmd = kalam();
        cmd.args(["--profile", "bench"]);
        cmd
    };
    let token_cmd = || {
        let mut cmd = kalam();
        cmd.args(["--url", &server.url, "--token", &token]);
        cmd
    };
    let password = || {
        let mut cmd = kalam();
        cmd.args(["--url", &server.url, "--user", "root"]).env("KALAM_PASSWORD", ROOT_PASSWORD);
        cmd
    };

    println!("kalam startup (server {})", server.url);
    summary("start to prompt, --profile", (0..RUNS).map(|_| start_to_prompt(profile(), &prompt)).collect());
    summary("start to prompt, --token", (0..RUNS).map(|_| start_to_prompt(token_cmd(), &prompt)).collect());
    summary(
        "start to prompt, --user (bcrypt cost 4)",
        (0..RUNS).map(|_| start_to_prompt(password(), &prompt)).collect(),
    );
    let wall = |make: &dyn Fn() -> std::process::Command| -> Vec<f64> {
        (0..RUNS)
            .map(|_| {
                let mut cmd = make();
                cmd.args(["-c", "SELECT 1"]).stdin(std::process::Stdio::null());
                let started = Instant::now();
                let out = cmd.output().expect("run kalam");
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                assert!(out.status.success(), "{out:?}");
                ms
            })
            .collect()
    };
    summary("kalam -c 'SELECT 1', --profile", wall(&profile));
    summary("kalam -c 'SELECT 1', --token", wall(&token_cmd));
    summary("kalam -c 'SELECT 1', --user (bcrypt cost 4)", wall(&password));
}
