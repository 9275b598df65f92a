//! Compile-time contract of `#[workflow]`: what compiles cleanly, and what is refused with
//! an error on the user's code. Regenerate `.stderr` files with `TRYBUILD=overwrite`
//! after reviewing the change.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
