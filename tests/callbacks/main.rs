//! Callbacks (`wait_for_callback!`): a workflow hands a token out and waits until it is
//! completed, failed or times out.
//!
//! - `resolve`: completion, failure, timeout, heartbeats and their timeout, a second
//!   completion, forged and malformed tokens, a value of the wrong type, a completion
//!   that arrives while the token is being sent, the history and the listing filter;
//! - `durable`: the pending callback on SQLite across restarts (a completion before and
//!   after recovery, a deadline that passed while the program was down), a redrive, and
//!   the version-3 file upgraded in place;
//! - `crash`: `kill -9` while executions wait, then completions after recovery;
//! - `scale`: 10,000 executions on SQLite, each waiting on a callback, completed from
//!   another task in random order.

mod crash;
mod durable;
mod resolve;
mod scale;
mod shared;
