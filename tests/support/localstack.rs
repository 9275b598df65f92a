//! LocalStack's Step Functions for the tests: installed by
//! `tools/localstack/localstack.sh install` (a pinned `localstack-core` in a Python 3.13
//! venv under `target/localstack`), started on a free loopback port, stopped when
//! dropped. It runs through `tools/localstack/serve.py`, which fixes a race of
//! LocalStack's `GetActivityTask` (a task lost with a 500 when another execution is
//! starting; the file has the details and a reproduction).
//!
//! Without Python 3.13 the tests fail when `CI` is set, and print a loud skip otherwise.

// Included by several tests, each using a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running LocalStack, killed (with its process group) when dropped.
pub struct LocalStack {
    child: Child,
    url: String,
    log: PathBuf,
}

impl LocalStack {
    /// Installs LocalStack if needed and starts it; `None` (after a loud skip) when
    /// Python 3.13 is missing outside CI.
    pub async fn start() -> Option<LocalStack> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let install = Command::new("bash")
            .arg(root.join("tools/localstack/localstack.sh"))
            .arg("install")
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs");
        if install.status.code() == Some(2) && std::env::var_os("CI").is_none() {
            eprintln!("\n!!!!!!!! SKIPPED: Python 3.13 is not installed; the LocalStack tests did not run !!!!!!!!\n");
            return None;
        }
        assert!(
            install.status.success(),
            "tools/localstack/localstack.sh install failed (see above)"
        );
        let python = String::from_utf8(install.stdout).unwrap();
        let python = python
            .lines()
            .last()
            .expect("the script prints the python")
            .trim();

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = root.join("target/localstack");
        let log = dir.join(format!("localstack-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(python)
                .arg(root.join("tools/localstack/serve.py"))
                .env("SERVICES", "stepfunctions,sts,events")
                .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
                .env("DNS_ADDRESS", "0")
                .env("SKIP_SSL_CERT_DOWNLOAD", "1")
                .env("DISABLE_EVENTS", "1")
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .process_group(0)
                .spawn()
                .expect("LocalStack starts")
        };
        let mut stack = LocalStack {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        stack.wait_ready().await;
        Some(stack)
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        let health = format!("{}/_localstack/health", self.url);
        let client = reqwest::Client::new();
        loop {
            if let Ok(answer) = client.get(&health).send().await {
                let text = answer.text().await.unwrap_or_default();
                if text.contains(r#""stepfunctions": "available""#)
                    || text.contains(r#""stepfunctions": "running""#)
                {
                    eprintln!("LocalStack ready in {:.1?}", started.elapsed());
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("LocalStack exited ({status}):\n{}", self.log_tail());
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "LocalStack was not ready after 120 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The end of LocalStack's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // The whole process group: LocalStack may have started helpers. Through the
        // system call, not `kill -TERM -<pgid>`: procps-ng 4.0.2's kill reads that
        // argument as -1 and signals every process of the machine.
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
