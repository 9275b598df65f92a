//! The console in a real browser: headless Chromium (Debian's `chromium`), driven over
//! WebDriver by `chromedriver`, both installed by `.ci/setup`. Screenshots go to
//! `target/console-screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use workflow::Status;

use super::Fixture;

/// A chromedriver process, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A browser session, or `None` where there is no chromedriver (a developer's machine:
/// CI always has one, and fails without it).
async fn browser() -> Option<(Driver, Client)> {
    let driver = std::env::var_os("CHROMEDRIVER").unwrap_or_else(|| "chromedriver".into());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => Driver(child),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no chromedriver ({e}); `bash .ci/setup` installs it");
            return None;
        }
        Err(e) => panic!("CI needs chromedriver (`bash .ci/setup` installs it): {e}"),
    };
    let mut capabilities = serde_json::Map::new();
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100"],
    });
    if let Some(binary) = std::env::var_os("CHROMIUM") {
        options["binary"] = json!(binary.to_string_lossy());
    }
    capabilities.insert("goog:chromeOptions".into(), options);
    let started = Instant::now();
    loop {
        match ClientBuilder::native()
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return Some((child, client)),
            Err(e) if started.elapsed() > Duration::from_secs(20) => {
                panic!("chromedriver did not start a session: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_console_lists_shows_and_redrives() {
    let f = Fixture::new().await;
    let Some((_driver, client)) = browser().await else {
        return;
    };

    // The list: both runs, newest first.
    client
        .goto(&format!("{}/executions?top=on", f.url))
        .await
        .unwrap();
    let rows = client
        .find(Locator::Css("#executions"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (failed_at, succeeded_at) = (
        rows.find(f.failed.as_str())
            .expect("the failed run is listed"),
        rows.find(f.succeeded.as_str())
            .expect("the succeeded run is listed"),
    );
    assert!(failed_at < succeeded_at);
    screenshot(&client, "1-executions.png").await;

    // The failed run: its graph with the path it took, a link to each child.
    client
        .find(Locator::LinkText(f.failed.as_str()))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        client.current_url().await.unwrap().as_str(),
        f.page(&f.failed)
    );
    let graph = client.find(Locator::Css("#graph svg")).await.unwrap();
    let drawn = graph.html(false).await.unwrap();
    assert!(
        drawn.contains("#b8e6b8") && drawn.contains("#f4a6a6"),
        "{drawn}"
    );
    let children = client.find_all(Locator::Css("#children a")).await.unwrap();
    assert_eq!(children.len(), 7);
    let status = client.find(Locator::Css("h1 .status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "Failed");
    screenshot(&client, "2-failed-execution.png").await;

    // The service is fixed: redrive from the page.
    f.service.set_refuse_every(0);
    client
        .find(Locator::Id("redrive"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The page reloads itself while the execution runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = match client.find(Locator::Css("h1 .status")).await {
            Ok(status) => status.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if status == "Succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the redrive"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let history = client
        .find(Locator::Css("#history"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(history.contains("ExecutionRedriven") && history.contains("ExecutionSucceeded"));
    screenshot(&client, "3-redriven-execution.png").await;
    let record = f.runtime.record(&f.failed).await.unwrap();
    assert_eq!((record.status, record.redrives), (Status::Succeeded, 1));
    client.close().await.unwrap();
}
