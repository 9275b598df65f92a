//! See `main.rs`.
//!
//! The store's faults through the runtime: who may open a file, what a corrupted page, an
//! unreadable row and a deleted file do to the executions running on it. The store alone
//! is tested in `workflow-runtime/src/store/sqlite/tests.rs`.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;
use tokio::time::timeout;
use workflow::prelude::*;
use workflow::{
    ExecutionFilter, ExecutionId, OpenError, SqliteStore, StartError, Status, StoreError,
};

/// How long a test waits for what must happen: generous, not a performance figure.
const BOUND: Duration = Duration::from_secs(30);

#[workflow(name = "FaultsNap")]
async fn nap(ms: u64) -> u64 {
    sleep!(ms.millis());
    ms
}

/// Checkpoints every few milliseconds for as long as it runs.
#[workflow(name = "FaultsTicker")]
async fn ticker(ticks: u32) -> u32 {
    let mut done: u32 = 0;
    while done < ticks {
        sleep!(5.millis());
        done += 1;
    }
    done
}

/// A task that waits until the test opens the gate: while it waits, its execution
/// writes nothing.
#[derive(Clone)]
struct Gate {
    open: watch::Receiver<bool>,
    waiting: Arc<AtomicU32>,
}

impl Gate {
    fn new() -> (Gate, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let gate = Gate {
            open: rx,
            waiting: Arc::default(),
        };
        (gate, tx)
    }

    async fn pass(&self, n: u32) -> u32 {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _ = self.open.clone().wait_for(|open| *open).await;
        n + 1
    }
}

#[workflow(name = "FaultsGated")]
async fn gated(gate: &Gate, n: u32) -> u32 {
    let passed: u32 = gate.pass(n).await;
    passed
}

fn runtime(store: &SqliteStore, gate: Gate) -> Runtime {
    Runtime::builder()
        .register(nap)
        .register(ticker)
        .register(gated)
        .dependency(gate)
        .store(store.clone())
        .build()
        .expect("the runtime builds")
}

fn assert_broken(err: &StoreError, db: &Path) {
    match err {
        StoreError::Broken { path, .. } => assert_eq!(path, db, "{err}"),
        other => panic!("expected StoreError::Broken, got {other:?}"),
    }
}

async fn until(what: &str, check: impl Fn() -> bool) {
    timeout(BOUND, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never happened: {what}"));
}

// ---------------------------------------------------------------------------------------
// 1. One runtime per file, whatever path reaches it.

/// The second process of the lock test: tries to open the store at `FAULTS_OPEN_DB`
/// (from its own working directory) and prints what happened.
#[test]
#[ignore = "the lock test's second process; the_lock_holds_through_every_path_to_the_file starts it"]
fn opener() {
    let Ok(db) = std::env::var("FAULTS_OPEN_DB") else {
        return;
    };
    match SqliteStore::open(&db) {
        Ok(_) => println!("RESULT opened"),
        Err(OpenError::Locked { holder, .. }) => match holder {
            Some(holder) => println!("RESULT locked by pid {}", holder.pid),
            None => println!("RESULT locked by someone"),
        },
        Err(OpenError::HardLinked { links, .. }) => println!("RESULT hard linked {links}"),
        Err(e) => println!("RESULT error {e}"),
    }
}

/// Opens `db` in another process, started in `cwd`: the kernel's lock is what refuses
/// it there (in this process, the table of held files answers first).
fn open_elsewhere(db: &Path, cwd: &Path) -> String {
    let output = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([
            "store::opener",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FAULTS_OPEN_DB", db)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("the opener runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        // Test harness output may precede it on its line.
        .find_map(|line| line.split_once("RESULT ").map(|(_, result)| result))
        .unwrap_or_else(|| {
            panic!(
                "the opener printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .to_owned()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_holds_through_every_path_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let store = SqliteStore::open(&db).unwrap();
    let rt = runtime(&store, Gate::new().0);
    drop(store);
    let held = format!("locked by pid {}", std::process::id());

    // A symlink, a relative path (from the file's directory, and through a
    // subdirectory), and the path itself, from another process.
    let link = dir.path().join("link.sqlite");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    assert_eq!(open_elsewhere(&link, dir.path()), held);
    assert_eq!(open_elsewhere(Path::new("wf.sqlite"), dir.path()), held);
    let sub = dir.path().join("sub");
    assert_eq!(open_elsewhere(Path::new("../wf.sqlite"), &sub), held);
    assert_eq!(open_elsewhere(&db, dir.path()), held);
    // And from this process, through the symlink.
    match Runtime::builder().sqlite(&link).build().unwrap_err() {
        workflow::BuildError::Open(OpenError::Locked {
            path,
            holder: Some(holder),
        }) => {
            assert_eq!((path, holder.pid), (link.clone(), std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }

    // No file beside the database is the lock: deleting the holder's note (the only
    // one) leaves the file locked, by someone unnamed.
    let sidecars: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock" || e == "holder"))
        .collect();
    assert_eq!(sidecars, [dir.path().join("wf.sqlite.holder")]);
    std::fs::remove_file(&sidecars[0]).unwrap();
    assert_eq!(open_elsewhere(&link, dir.path()), "locked by someone");

    // A second name (a hard link) would have its own log: refused, held or not.
    let hard = dir.path().join("hard.sqlite");
    std::fs::hard_link(&db, &hard).unwrap();
    assert_eq!(open_elsewhere(&hard, dir.path()), "hard linked 2");
    rt.shutdown().await;
    match Runtime::builder().sqlite(&db).build().unwrap_err() {
        workflow::BuildError::Open(OpenError::HardLinked { path, links }) => {
            assert_eq!((path, links), (db.clone(), 2));
        }
        other => panic!("expected HardLinked, got {other:?}"),
    }
    std::fs::remove_file(&hard).unwrap();

    // Released: the refusals did not disturb it, and any path opens it now.
    assert_eq!(open_elsewhere(&link, dir.path()), "opened");
    Runtime::builder().sqlite(&db).build().unwrap();
}

// ---------------------------------------------------------------------------------------
// 2. A corrupted page stops the runtime with a typed error, and nothing hangs.

/// Overwrites every page of the file but the first with garbage, once every committed
/// page is in the file.
///
/// SQLite reads a page from the write-ahead log if the log has it, and keeps pages
/// cached while no other connection changed the log. The `TRUNCATE` checkpoint copies
/// the log into the file and restarts the log, which also makes every connection drop
/// its cache: the next transaction reads its pages from the (garbage) file. So nothing
/// may write between the checkpoint and the garbage.
fn corrupt_pages(db: &Path) {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint copied the whole log");
    let page_size: u64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    let len = file.metadata().unwrap().len();
    assert!(len > page_size, "the file has more than its first page");
    file.seek(SeekFrom::Start(page_size)).unwrap();
    file.write_all(&vec![0xA5; usize::try_from(len - page_size).unwrap()])
        .unwrap();
    file.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_page_stops_the_runtime_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let store = SqliteStore::open(&db).unwrap();
    let (gate, open) = Gate::new();
    let waiting = Arc::clone(&gate.waiting);
    let rt = runtime(&store, gate);
    let mut executions = Vec::new();
    for n in 0..50 {
        executions.push(rt.start(gated, n).await.unwrap());
    }
    // Every execution is in its task: nothing writes until the gate opens.
    until("every execution waits at the gate", || {
        waiting.load(Ordering::SeqCst) == 50
    })
    .await;
    corrupt_pages(&db);

    timeout(BOUND, async {
        // A start reads the damaged tables: the store stops and says why.
        let err = match rt.start(gated, 99).await {
            Err(StartError::Store(e)) => e,
            other => panic!("expected a store error, got {other:?}"),
        };
        assert_broken(&err, &db);
        assert!(err.to_string().contains("malformed"), "{err}");
        // The executions' next checkpoints fail the same way, once, without retries:
        // they end faulted (which the broken store cannot record), and their results
        // say why instead of hanging.
        open.send_replace(true);
        for execution in executions {
            let id = execution.id().clone();
            match execution.result().await {
                Err(RunError::Faulted(fault)) => {
                    assert!(
                        fault.message().contains(&db.display().to_string()),
                        "{fault:?}"
                    );
                }
                other => panic!("expected a fault, got {other:?}"),
            }
            assert_broken(&rt.wait(&id).await.unwrap_err(), &db);
        }
        // Every other call answers the same error.
        assert_broken(&rt.list(ExecutionFilter::new()).await.unwrap_err(), &db);
        assert_broken(&rt.recover().await.unwrap_err(), &db);
    })
    .await
    .expect("the runtime surfaces the corruption within the bound");
    assert!(store.stats().broken);
    rt.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 3. One unreadable row does not hide the others.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_with_a_bad_status_is_reported_and_the_others_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let rt = runtime(&SqliteStore::open(&db).unwrap(), Gate::new().0);
    let mut ids = Vec::new();
    for ms in [1, 2, 3] {
        let execution = rt.start(nap, ms).await.unwrap();
        ids.push(execution.id().clone());
        execution.result().await.unwrap();
    }
    rt.shutdown().await;

    // Rows no version of the store writes, by another program while no runtime runs.
    let columns = "(id, workflow, fingerprint, status, input, state, created_at, updated_at)";
    Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "INSERT INTO executions {columns}
                 VALUES ('bad-status', 'FaultsNap', 1, 'Sleepwalking', '1', x'', 1, 1);
             INSERT INTO executions {columns}
                 VALUES ('bad-time', 'FaultsNap', 1, 'Succeeded', '1', x'', 'noon', 1);"
        ))
        .unwrap();

    let rt = runtime(&SqliteStore::open(&db).unwrap(), Gate::new().0);
    let listing = rt.list(ExecutionFilter::new()).await.unwrap();
    let listed: Vec<ExecutionId> = listing.executions.iter().map(|e| e.id.clone()).collect();
    assert_eq!(listed, ids, "the readable rows, in order");
    assert!(listing
        .executions
        .iter()
        .all(|e| e.status == Status::Succeeded));
    let corrupt: Vec<(String, &str)> = listing
        .corrupt
        .iter()
        .map(|row| (row.id.to_string(), row.message.as_str()))
        .collect();
    assert_eq!(corrupt.len(), 2, "{corrupt:?}");
    assert_eq!(corrupt[0], ("bad-status".into(), "status: Sleepwalking"));
    assert_eq!(corrupt[1].0, "bad-time");
    assert!(corrupt[1].1.starts_with("created_at"), "{corrupt:?}");
    assert!(
        listing.corrupt[0].to_string().contains("bad-status"),
        "{}",
        listing.corrupt[0]
    );
    // Filters still apply to the readable rows; the others still work.
    let by_status = rt
        .list(ExecutionFilter::new().status(Status::Succeeded).limit(2))
        .await
        .unwrap();
    assert_eq!(by_status.executions.len(), 2);
    assert!(by_status.corrupt.is_empty());
    assert_eq!(rt.record(&ids[0]).await.unwrap().status, Status::Succeeded);
    rt.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 4. The file deleted under a running runtime.

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_under_a_running_runtime_stops_it_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.sqlite");
    let store = SqliteStore::open(&db).unwrap();
    let rt = runtime(&store, Gate::new().0);
    let ticking = rt.start(ticker, u32::MAX).await.unwrap();
    let ticking_id = ticking.id().clone();
    // Starts acknowledged while the file goes away, until one is refused.
    let racer = {
        let rt = rt.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0.. {
                match rt.start_with_id(nap, format!("racer-{i}"), 60_000).await {
                    Ok(execution) => acknowledged.push(execution.id().clone()),
                    Err(e) => return (acknowledged, e),
                }
            }
            unreachable!()
        })
    };
    until("some starts are acknowledged", || store.stats().writes > 20).await;
    // A second name keeps the file's contents for the check below; the store's path
    // no longer reaches them.
    let kept = dir.path().join("kept.sqlite");
    std::fs::hard_link(&db, &kept).unwrap();
    std::fs::remove_file(&db).unwrap();

    timeout(BOUND, async {
        let after = rt.start(nap, 1).await;
        match after {
            Err(StartError::Store(e)) => assert_broken(&e, &db),
            other => panic!("a start after the deletion: expected Broken, got {other:?}"),
        }
        let (acknowledged, refused) = racer.await.unwrap();
        match refused {
            StartError::Store(e) => assert_broken(&e, &db),
            other => panic!("expected Broken, got {other:?}"),
        }
        match ticking.result().await {
            Err(RunError::Faulted(fault)) => {
                assert!(
                    fault.message().contains(&db.display().to_string()),
                    "{fault:?}"
                );
                assert!(fault.message().contains("no longer exists"), "{fault:?}");
            }
            other => panic!("expected a fault, got {other:?}"),
        }
        assert_broken(&rt.list(ExecutionFilter::new()).await.unwrap_err(), &db);
        rt.shutdown().await;
        drop(store);
        assert!(!db.exists(), "nothing recreated the file");

        // Everything acknowledged is in the file the store wrote (with its log, which
        // the stopped store left as it was).
        std::fs::rename(&kept, &db).unwrap();
        let reopened = SqliteStore::open(&db).unwrap();
        let rt = runtime(&reopened, Gate::new().0);
        for id in acknowledged.iter().chain([&ticking_id]) {
            rt.record(id).await.unwrap_or_else(|e| panic!("{id}: {e}"));
        }
        assert!(!acknowledged.is_empty());
        rt.shutdown().await;
    })
    .await
    .expect("the runtime surfaces the deletion within the bound");
}
