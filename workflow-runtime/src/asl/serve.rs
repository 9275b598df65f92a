//! The step handler as a long-lived local process: one JSON request per line on the
//! reader, one JSON answer per line on the writer (for tests and local runs of the ASL).

use std::io::{BufRead, Write};

use serde_json::{json, Value};

use super::StepHandler;

/// Answers JSON lines until the reader ends.
///
/// Each line is a step request (see [`StepHandler`]), optionally with an `"id"` that the
/// answer repeats. The answer is `{"id": …, "ok": <document>}` or
/// `{"id": …, "error": {"name": "Workflow.InvalidRequest", "message": "…"}}`; a line that
/// is not JSON is answered with a `Workflow.InvalidRequest` error, never a crash.
/// Requests are answered in order, one at a time.
///
/// Blocks: call it from a plain thread, not from inside a tokio runtime (it runs the
/// steps on a current-thread runtime of its own).
pub fn serve_json_lines(
    handler: &StepHandler,
    reader: impl BufRead,
    mut writer: impl Write,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(mut request) => {
                let id = request
                    .as_object_mut()
                    .and_then(|m| m.remove("id"))
                    .unwrap_or(Value::Null);
                match runtime.block_on(handler.handle(request)) {
                    Ok(doc) => json!({"id": id, "ok": doc}),
                    Err(e) => {
                        json!({"id": id, "error": {"name": e.name(), "message": e.to_string()}})
                    }
                }
            }
            Err(e) => json!({
                "id": null,
                "error": {"name": "Workflow.InvalidRequest", "message": format!("not JSON: {e}")},
            }),
        };
        writeln!(writer, "{answer}")?;
        writer.flush()?;
    }
    Ok(())
}
