//! The step handler as a long-lived local process: one JSON request per line on the
//! reader, one JSON answer per line on the writer (for tests and local runs of the ASL).

use std::io::{BufRead, Read, Write};

use serde_json::{json, Value};

use super::error::{StepError, StepPayload};
use super::StepHandler;

/// Answers JSON lines until the reader ends.
///
/// Each line is a step request (see [`StepHandler`]), optionally with an `"id"` that the
/// answer repeats. The answer is `{"id": …, "ok": <document>}` or
/// `{"id": …, "error": {"name": "Workflow.InvalidRequest", "message": "…"}}`.
/// Requests are answered in order, one at a time.
///
/// A bad line is answered with an error line (`"id": null`, since its id cannot be
/// read) and the next line is served: one that is not UTF-8 or not JSON
/// (`Workflow.InvalidRequest`), or one longer than the handler's
/// [`request_limit`](StepHandler::request_limit) (`Workflow.PayloadTooLarge`), which is
/// skipped without being held in memory. A panic while answering a request answers it
/// with `Workflow.Panic`. Only an I/O error of the reader or the writer ends the loop.
///
/// Blocks: call it from a plain thread, not from inside a tokio runtime (it runs the
/// steps on a current-thread runtime of its own).
pub fn serve_json_lines(
    handler: &StepHandler,
    mut reader: impl BufRead,
    mut writer: impl Write,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let limit = handler.request_limit();
    let mut line = Vec::new();
    loop {
        let answer = match read_line(&mut reader, limit, &mut line)? {
            Line::End => return Ok(()),
            Line::TooLong(size) => refusal(&StepError::PayloadTooLarge {
                what: StepPayload::Request,
                size,
                limit,
            }),
            Line::Read => match std::str::from_utf8(&line) {
                Err(e) => refusal(&StepError::InvalidRequest(format!("not UTF-8: {e}"))),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => match serde_json::from_str::<Value>(text) {
                    Err(e) => refusal(&StepError::InvalidRequest(format!("not JSON: {e}"))),
                    Ok(mut request) => {
                        let id = request
                            .as_object_mut()
                            .and_then(|m| m.remove("id"))
                            .unwrap_or(Value::Null);
                        match runtime.block_on(handler.handle_parsed(request)) {
                            Ok(doc) => json!({"id": id, "ok": doc}),
                            Err(e) => json!({"id": id, "error": error(&e)}),
                        }
                    }
                },
            },
        };
        writeln!(writer, "{answer}")?;
        writer.flush()?;
    }
}

/// The answer to a line that is not a request.
fn refusal(e: &StepError) -> Value {
    json!({"id": null, "error": error(e)})
}

fn error(e: &StepError) -> Value {
    json!({"name": e.name(), "message": e.to_string()})
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq)]
enum Line {
    /// The reader has ended.
    End,
    /// A line (without its `\n`) is in the buffer.
    Read,
    /// A line longer than the limit was skipped; this many bytes of it were read.
    TooLong(usize),
}

/// Reads the next line into `line`, holding at most `limit + 1` bytes of it: the rest of
/// a longer line is read and dropped, a buffer at a time.
fn read_line(reader: &mut impl BufRead, limit: usize, line: &mut Vec<u8>) -> std::io::Result<Line> {
    line.clear();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let n = reader.by_ref().take(cap).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        return Ok(Line::Read);
    }
    if line.len() <= limit {
        // The last line, without a `\n`.
        return Ok(Line::Read);
    }
    let mut size = line.len();
    line.clear();
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                size += i;
                reader.consume(i + 1);
                break;
            }
            None => {
                let n = buf.len();
                size += n;
                reader.consume(n);
            }
        }
    }
    Ok(Line::TooLong(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_and_the_next_one_read() {
        let input = b"12345\n123456\n1234567890\r\nok\nlast";
        let mut reader = std::io::BufReader::with_capacity(4, &input[..]);
        let mut line = Vec::new();
        let mut read = Vec::new();
        loop {
            match read_line(&mut reader, 6, &mut line).unwrap() {
                Line::End => break,
                Line::Read => read.push(String::from_utf8(line.clone()).unwrap()),
                Line::TooLong(n) => read.push(format!("too long: {n}")),
            }
        }
        assert_eq!(read, ["12345", "123456", "too long: 11", "ok", "last"]);
    }
}
