//! Fault injection: the faults other than `kill -9` that the runtime must survive
//! without hanging or running anything twice (see the README's durability section).
//!
//! - `panics`: a panic in a task, a predicate, the code between yield points or a
//!   child, with and without a parent, then a restart;
//! - `store`: the one-runtime lock through a symlink, a hard link and a deleted lock
//!   file; a corrupted page; an unreadable row; the file deleted under a running runtime;
//! - `step_handler`: bad, forged and unsigned step requests, oversized payloads, invalid
//!   UTF-8 and a panic over JSON lines.
//!
//! Every test ends with a typed error or a terminal status within a bounded time.

mod panics;
mod step_handler;
mod store;
