//! `kill -9` while executions wait on callbacks, then completions after recovery.
//!
//! A worker process (this test binary, `--exact callbacks::crash::worker`) runs
//! `ORDERS` executions of a workflow that sends its token to a file (one `write(2)` a
//! line, which a SIGKILL does not cut) and waits. The test:
//!
//! 1. starts the worker in "wait" mode and kills it each time a few more tokens are out
//!    (restarting it: it recovers and starts what is missing), then once more while
//!    every execution waits;
//! 2. starts it in "complete" mode, which recovers and completes every token in random
//!    order, and kills it halfway;
//! 3. starts it in "complete" mode again, which completes the rest (a completion made
//!    before the kill is refused as resolved: it was kept) and waits for every end;
//! 4. checks the file: every execution succeeded once, with the value its token was
//!    completed with; each waited on one callback, completed once; a token sent again
//!    after a kill was the same token.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use workflow::prelude::*;
use workflow::store::Store;
use workflow::{
    CallbackToken, CompletionError, EventKind, ExecutionFilter, ExecutionId, Outcome, SqliteStore,
    StartError, Status, StoreError,
};

const ORDERS: usize = 24;

/// Sends tokens by appending `{order} {token}` lines to a file.
struct FileDesk {
    file: File,
}

impl FileDesk {
    async fn send(&self, order: &Request, token: CallbackToken) -> Result<(), std::io::Error> {
        // One write per line on an O_APPEND file: a kill cannot leave half a line.
        (&self.file).write_all(format!("{} {token}\n", order.id).as_bytes())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Request {
    id: String,
    amount: u32,
}

#[workflow(name = "CrashApprove")]
async fn crash_approve(desk: &FileDesk, request: Request) -> Result<u32, CallbackError> {
    let bonus: u32 = wait_for_callback!(|token| desk.send(&request, token), timeout = 1.hours())?;
    Ok(request.amount + bonus)
}

fn order_id(i: usize) -> ExecutionId {
    ExecutionId::from(format!("order-{i:03}"))
}

/// The value the token of order `i` is completed with.
fn bonus(i: usize) -> u32 {
    u32::try_from(i).unwrap() * 1000
}

/// The last token sent for each order, from the tokens file.
fn tokens(path: &Path) -> HashMap<String, Vec<CallbackToken>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut tokens: HashMap<String, Vec<CallbackToken>> = HashMap::new();
    for line in text.lines() {
        let (order, token) = line.split_once(' ').expect("`{order} {token}`");
        tokens
            .entry(order.to_owned())
            .or_default()
            .push(token.parse().expect("a valid token"));
    }
    tokens
}

#[test]
#[ignore = "the callback crash test's worker process; callbacks_survive_kill_9 starts it"]
fn worker() {
    let Ok(db) = std::env::var("CALLBACK_WORKER_DB") else {
        return;
    };
    let tokens_file = PathBuf::from(std::env::var("CALLBACK_WORKER_TOKENS").unwrap());
    let mode = std::env::var("CALLBACK_WORKER_MODE").unwrap();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&tokens_file)
        .unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let rt = Runtime::builder()
                .register(crash_approve)
                .dependency(FileDesk { file })
                .sqlite(&db)
                .build()
                .unwrap();
            let report = rt.recover().await.unwrap();
            println!("RECOVERED {report}");
            if mode == "wait" {
                for i in 0..ORDERS {
                    let request = Request {
                        id: order_id(i).to_string(),
                        amount: u32::try_from(i).unwrap(),
                    };
                    match rt.start_with_id(crash_approve, order_id(i), request).await {
                        Ok(_) | Err(StartError::Store(StoreError::AlreadyExists(_))) => {}
                        Err(e) => panic!("start failed: {e}"),
                    }
                }
                println!("STARTED");
                // Wait to be killed.
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            // Complete every token in a random order, and print a line after each.
            let tokens = tokens(&tokens_file);
            let mut order: Vec<usize> = (0..ORDERS).collect();
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
            for i in (1..order.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                order.swap(i, usize::try_from(seed % (i as u64 + 1)).unwrap());
            }
            for i in order {
                let token = tokens[order_id(i).as_str()].last().unwrap();
                match rt.complete(token, bonus(i)).await {
                    Ok(()) => println!("COMPLETED {i}"),
                    // Completed before a kill: kept.
                    Err(
                        CompletionError::AlreadyResolved { .. } | CompletionError::Ended { .. },
                    ) => {
                        println!("KEPT {i}");
                    }
                    Err(e) => panic!("completion of order {i} refused: {e}"),
                }
            }
            for i in 0..ORDERS {
                rt.wait(&order_id(i)).await.unwrap();
            }
            println!("DONE");
        });
}

struct Files {
    db: PathBuf,
    tokens: PathBuf,
    output: PathBuf,
}

fn spawn(files: &Files, mode: &str) -> Child {
    let output = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.output)
        .unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CALLBACK_WORKER_DB", &files.db)
        .env("CALLBACK_WORKER_TOKENS", &files.tokens)
        .env("CALLBACK_WORKER_MODE", mode)
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap()
}

fn output(files: &Files) -> String {
    std::fs::read_to_string(&files.output).unwrap_or_default()
}

/// Waits until `done` holds, the worker still running; panics after a minute.
fn until(files: &Files, child: &mut Child, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the worker exited ({status}) before {what}:\n{}",
                output(files)
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            output(files)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn callbacks_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files {
        db: dir.path().join("callbacks.sqlite"),
        tokens: dir.path().join("tokens"),
        output: dir.path().join("worker.out"),
    };
    let started = Instant::now();
    // 1. Kills while the executions start and send their tokens (each once a few more
    // tokens are out), then once all of them wait.
    let mut kills = 0;
    loop {
        let sent = tokens(&files.tokens).len();
        let mut child = spawn(&files, "wait");
        let wanted = (sent + 5).min(ORDERS);
        until(&files, &mut child, "more tokens are sent", || {
            tokens(&files.tokens).len() >= wanted
        });
        if wanted == ORDERS {
            // Every execution waits: let them settle, then the kill while waiting.
            std::thread::sleep(Duration::from_millis(100));
        }
        kill(&mut child);
        kills += 1;
        if wanted == ORDERS {
            break;
        }
    }

    // 2. Completions after recovery, killed halfway.
    let completed = |text: &str| text.matches("COMPLETED ").count();
    let before = completed(&output(&files));
    let mut child = spawn(&files, "complete");
    until(&files, &mut child, "half of the completions", || {
        completed(&output(&files)) >= before + ORDERS / 2
    });
    kill(&mut child);
    kills += 1;

    // 3. The rest, and every end.
    let mut child = spawn(&files, "complete");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the last worker did not finish:\n{}",
            output(&files)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = output(&files);
    assert!(status.success() && text.contains("DONE"), "{text}");
    let kept = text.matches("KEPT ").count();

    // 4. The file.
    let sent = tokens(&files.tokens);
    let mut resent = 0;
    for (order, tokens) in &sent {
        let distinct: HashSet<&CallbackToken> = tokens.iter().collect();
        assert_eq!(distinct.len(), 1, "{order} was sent different tokens");
        resent += tokens.len() - 1;
    }
    let store = SqliteStore::open(&files.db).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let all = store.list(&ExecutionFilter::new()).await.unwrap();
        assert_eq!(all.len(), ORDERS);
        for i in 0..ORDERS {
            let record = store.get(&order_id(i)).await.unwrap().unwrap();
            assert_eq!(record.status, Status::Succeeded, "{}", record.id);
            let expected = u32::try_from(i).unwrap() + bonus(i);
            match &record.outcome {
                Some(Outcome::Succeeded(v)) => assert_eq!(v.decode::<u32>().unwrap(), expected),
                other => panic!("{}: {other:?}", record.id),
            }
            let history = store.history(&record.id).await.unwrap();
            let count = |f: fn(&EventKind) -> bool| history.iter().filter(|e| f(&e.kind)).count();
            assert_eq!(
                count(|k| matches!(k, EventKind::CallbackStarted { .. })),
                1,
                "{}",
                record.id
            );
            assert_eq!(
                count(|k| matches!(k, EventKind::CallbackCompleted { .. })),
                1,
                "{}",
                record.id
            );
            assert_eq!(
                count(|k| matches!(k, EventKind::ExecutionSucceeded { .. })),
                1,
                "{}",
                record.id
            );
        }
    });
    let _ = writeln!(
        std::io::stderr(),
        "callback crash test: {kills} kills, {ORDERS} executions waiting on callbacks, all \
         succeeded once with their completion's value; {kept} completions made before a \
         kill were kept (refused as resolved after it); {resent} tokens sent again after \
         a kill, each the same token; {:.1?}",
        started.elapsed()
    );
}
