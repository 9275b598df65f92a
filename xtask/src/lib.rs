//! Project chores, as a library so tests can call them (`tests/generated.rs` includes
//! [`gen`] with `#[path]`).

pub mod gen;
