//! See `main.rs`. The step handler trusts nothing in a request: a state sent to a Lambda
//! state it does not belong at, a forged or unsigned document (with a signing key), an
//! execution id chosen by the input, payloads over the limit, and lines that are not
//! requests are each refused with a typed error, and the handler goes on serving.
//!
//! `checkout` charges, waits, then ships: its Lambda states are `Start` (makes the
//! charge), `shop.charge` (the code after it: the wait), `sleep: resume` (makes the
//! shipment) and `shop.ship` (the code after it: the end). The shop counts its calls, so
//! a step skipped or run twice shows.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use workflow::asl::{serve_json_lines, StepError, StepHandler, StepHandlerBuilder, StepPayload};
use workflow::prelude::*;
use workflow::{BuildError, DEFAULT_PAYLOAD_LIMIT};

const KEY: &[u8] = b"the fault tests' signing key, 32+ bytes";
const EXECUTION: &str = "arn:aws:states:eu-west-1:123456789012:execution:checkout:run-1";

/// Counts charges and shipments.
#[derive(Default)]
struct Shop {
    charges: AtomicU32,
    shipments: AtomicU32,
}

impl Shop {
    async fn charge(&self, amount: u32) -> u32 {
        self.charges.fetch_add(1, Ordering::SeqCst);
        amount * 100
    }

    async fn ship(&self, receipt: u32) -> String {
        self.shipments.fetch_add(1, Ordering::SeqCst);
        format!("shipped {receipt}")
    }

    async fn blob(&self, bytes: u32) -> String {
        "x".repeat(bytes as usize)
    }

    async fn boom(&self, n: u32) -> u32 {
        panic!("boom {n}")
    }
}

#[workflow]
async fn checkout(shop: &Shop, amount: u32) -> String {
    let receipt: u32 = shop.charge(amount).await;
    sleep!(1.secs());
    let shipped: String = shop.ship(receipt).await;
    shipped
}

/// A parent of `checkout`: its child's id is the native `{parent}/{batch}.{index}`.
#[workflow]
async fn order(amount: u32) -> Result<String, NestedError<NoError>> {
    let shipped: String = call_nested!(checkout(amount))?;
    Ok(shipped)
}

/// A task whose result is `bytes` long.
#[workflow]
async fn big(shop: &Shop, bytes: u32) -> usize {
    let blob: String = shop.blob(bytes).await;
    blob.len()
}

/// A task that panics.
#[workflow]
async fn explode(shop: &Shop, n: u32) -> u32 {
    shop.boom(n).await
}

fn builder() -> StepHandlerBuilder {
    builder_for(&Arc::default())
}

/// A builder whose handler calls `shop`.
fn builder_for(shop: &Arc<Shop>) -> StepHandlerBuilder {
    StepHandler::builder()
        .register(checkout)
        .register(order)
        .register(big)
        .register(explode)
        .dependency_arc(shop.clone())
}

impl Shop {
    fn calls(&self) -> (u32, u32) {
        (
            self.charges.load(Ordering::SeqCst),
            self.shipments.load(Ordering::SeqCst),
        )
    }
}

fn unsigned() -> StepHandler {
    builder().build().unwrap()
}

fn signed() -> StepHandler {
    builder().signing_key(KEY).build().unwrap()
}

/// Answers one request on a runtime of its own.
fn step(handler: &StepHandler, request: Value) -> Result<Value, StepError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(handler.handle(request))
}

fn request(workflow: &str, at: &str, document: Value) -> Value {
    json!({"workflow": workflow, "at": at, "execution": EXECUTION, "document": document})
}

/// `checkout(5)` run by `handler` from the start to its end: every answer, in order,
/// each sent back to the state its `next` leads to.
fn run_checkout(handler: &StepHandler) -> Vec<Value> {
    let mut answers =
        vec![step(handler, request("checkout", "Start", json!({"input": 5}))).unwrap()];
    for at in ["shop.charge", "sleep: resume", "shop.ship"] {
        let doc = answers.last().unwrap().clone();
        answers.push(step(handler, request("checkout", at, doc)).unwrap());
    }
    answers
}

fn name(result: Result<Value, StepError>) -> String {
    match result {
        Ok(doc) => panic!("answered {doc}, expected a refusal"),
        Err(e) => e.name().to_owned(),
    }
}

#[test]
fn a_final_state_sent_to_a_tasks_state_is_refused() {
    let shop = Arc::default();
    let h = builder_for(&shop).build().unwrap();
    let answers = run_checkout(&h);
    assert_eq!(shop.calls(), (1, 1));
    let next: Vec<&str> = answers
        .iter()
        .map(|a| a["next"].as_str().unwrap())
        .collect();
    assert_eq!(next, ["shop.charge", "sleep", "shop.ship", "Succeed"]);
    assert_eq!(answers[3]["output"], "shipped 500");
    // The state after the shipment (whose code only returns) sent to the Lambda after
    // the charge, to skip the wait and the shipment: refused, whether the document
    // says it is `shop.ship`'s or claims to be `shop.charge`'s.
    let last = answers[2].clone();
    let e = step(&h, request("checkout", "shop.charge", last.clone())).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidState");
    assert!(
        e.to_string().contains("does not lead to `shop.charge`"),
        "{e}"
    );
    let mut claimed = answers[0].clone();
    claimed["state"] = last["state"].clone();
    let e = step(&h, request("checkout", "shop.charge", claimed)).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidState");
    assert!(
        e.to_string().contains("resumes after `shop.ship`")
            && e.to_string().contains("after `shop.charge`"),
        "{e}"
    );
    // The same checks for the state waiting in the wait's Lambda.
    let mut claimed = answers[1].clone();
    claimed["state"] = last["state"].clone();
    assert_eq!(
        name(step(&h, request("checkout", "sleep: resume", claimed))),
        "Workflow.InvalidState"
    );
    assert_eq!(shop.calls(), (1, 1), "nothing ran");
}

#[test]
fn a_start_state_sent_to_a_later_state_is_refused() {
    let shop = Arc::default();
    let h = builder_for(&shop).build().unwrap();
    let answers = run_checkout(&h);
    // `Start` holds the input: sent to the Lambda after the charge, it would charge again.
    for (i, at) in [(0, "shop.charge"), (1, "sleep: resume"), (2, "shop.ship")] {
        let mut doc = answers[i].clone();
        // `Start` (variant 0) with its one field, in the state's `[tag, field, …]` form.
        doc["state"] = json!([0, 7]);
        let e = step(&h, request("checkout", at, doc)).unwrap_err();
        assert_eq!(e.name(), "Workflow.InvalidState", "{at}");
        assert!(e.to_string().contains("resumes from the start"), "{e}");
    }
    // An earlier state sent to a later Lambda (a task run again) is refused too.
    let mut doc = answers[2].clone();
    doc["state"] = answers[0]["state"].clone();
    assert_eq!(
        name(step(&h, request("checkout", "shop.ship", doc))),
        "Workflow.InvalidState"
    );
    assert_eq!(shop.calls(), (1, 1), "nothing ran again");
    // A Start request is not a document's: `at: Start` only ever starts.
    let e = step(&h, request("checkout", "Start", answers[1].clone())).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidInput");
}

#[test]
fn a_forged_state_is_refused_with_signing() {
    let h = signed();
    let answers = run_checkout(&h);
    assert!(answers.iter().all(|a| a["signature"].is_string()));
    // A made-up result of the charge.
    let mut forged = answers[0].clone();
    forged["state"] = json!({"AfterShopCharge": {"receipt": 1}});
    let e = step(&h, request("checkout", "shop.charge", forged)).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidState");
    assert!(e.to_string().contains("signature does not match"), "{e}");
    // A later state with its `next` changed to skip the shipment: the structural checks
    // pass (the state and `next` agree with `at`), the signature does not.
    let mut skip = answers[2].clone();
    skip["state"] = json!({"AfterShopShip": {"shipped": "shipped for free"}});
    assert_eq!(
        name(step(&h, request("checkout", "shop.ship", skip))),
        "Workflow.InvalidState"
    );
    // The virtual clock, the batch count, a made-up signature, another key's document.
    for (field, value) in [
        ("clock", json!(1)),
        ("batches", json!(9)),
        ("signature", json!("00".repeat(32))),
        ("signature", json!("not hex")),
    ] {
        let mut doc = answers[1].clone();
        doc[field] = value;
        assert_eq!(
            name(step(&h, request("checkout", "sleep: resume", doc))),
            "Workflow.InvalidState",
            "{field}"
        );
    }
    let other = builder().signing_key([1u8; 32]).build().unwrap();
    assert_eq!(
        name(step(
            &other,
            request("checkout", "shop.charge", answers[0].clone())
        )),
        "Workflow.InvalidState"
    );
    // A genuine document of another execution.
    let mut elsewhere = request("checkout", "shop.charge", answers[0].clone());
    elsewhere["execution"] =
        json!("arn:aws:states:eu-west-1:123456789012:execution:checkout:run-2");
    assert_eq!(name(step(&h, elsewhere)), "Workflow.InvalidState");
}

#[test]
fn an_unsigned_state_is_refused_with_signing() {
    let h = signed();
    let mut doc = step(&h, request("checkout", "Start", json!({"input": 5}))).unwrap();
    doc.as_object_mut().unwrap().remove("signature");
    let e = step(&h, request("checkout", "shop.charge", doc)).unwrap_err();
    assert_eq!(e.name(), "Workflow.InvalidState");
    assert!(e.to_string().contains("not signed"), "{e}");
    // A document of an unsigned handler is just as unsigned.
    let plain = step(
        &unsigned(),
        request("checkout", "Start", json!({"input": 5})),
    )
    .unwrap();
    assert!(plain.get("signature").is_none());
    assert_eq!(
        name(step(&h, request("checkout", "shop.charge", plain))),
        "Workflow.InvalidState"
    );
}

#[test]
fn a_signed_round_trip_through_several_steps_works() {
    let h = signed();
    // Through JSON text and back, as Step Functions passes it on.
    let mut answers = vec![step(&h, request("checkout", "Start", json!({"input": 5}))).unwrap()];
    for at in ["shop.charge", "sleep: resume", "shop.ship"] {
        let text = answers.last().unwrap().to_string();
        let doc: Value = serde_json::from_str(&text).unwrap();
        answers.push(step(&h, request("checkout", at, doc)).unwrap());
    }
    assert_eq!(answers[3]["next"], "Succeed");
    assert_eq!(answers[3]["output"], "shipped 500");
    assert!(answers.iter().all(|a| a["execution"] == EXECUTION));
    // A parent's child: the child takes the id its parent chose, with its ticket, and
    // the parent reads the child's output that Step Functions adds (not signed).
    let parent = step(&h, request("order", "Start", json!({"input": 3}))).unwrap();
    let call = &parent["children"][0];
    assert_eq!(call["id"], format!("{EXECUTION}/1.0"));
    assert!(call["ticket"].is_string());
    let child_input = json!({
        "input": call["input"], "id": call["id"], "ticket": call["ticket"],
        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": EXECUTION,
    });
    // On Step Functions the child's `$$.Execution.Id` is an ARN of its own.
    let child_arn = "arn:aws:states:eu-west-1:123456789012:execution:checkout:child-1";
    let mut child = step(
        &h,
        json!({"workflow": "checkout", "at": "Start", "execution": child_arn, "document": child_input}),
    )
    .unwrap();
    assert_eq!(child["execution"], format!("{EXECUTION}/1.0"));
    for at in ["shop.charge", "sleep: resume", "shop.ship"] {
        child = step(
            &h,
            json!({"workflow": "checkout", "at": at, "execution": child_arn, "document": child}),
        )
        .unwrap();
    }
    assert_eq!(child["output"], "shipped 300");
    let mut resumed = parent.clone();
    resumed["children_result"] = json!({"output": child["output"]});
    let end = step(&h, request("order", "checkout: resume", resumed)).unwrap();
    assert_eq!(
        (end["next"].clone(), end["output"].clone()),
        (json!("Succeed"), json!("shipped 300"))
    );
}

#[test]
fn an_id_in_the_input_is_ignored_and_an_id_with_a_slash_refused() {
    for h in [unsigned(), signed()] {
        // The input cannot choose the execution's id: `$$.Execution.Id` is its id.
        let doc = step(
            &h,
            request("checkout", "Start", json!({"input": 5, "id": "victim"})),
        )
        .unwrap();
        assert_eq!(doc["execution"], EXECUTION);
        // A top-level execution whose id looks like a child's.
        let mut slash = request("checkout", "Start", json!({"input": 5}));
        slash["execution"] = json!("victim/1.0");
        assert_eq!(name(step(&h, slash)), "Workflow.InvalidRequest");
        // No `$$.Execution.Id` at all.
        let mut none = request("checkout", "Start", json!({"input": 5}));
        none.as_object_mut().unwrap().remove("execution");
        assert_eq!(name(step(&h, none)), "Workflow.InvalidRequest");
    }
    // With a key, a child's id needs its ticket: a made-up one, or a genuine one for
    // another input or id, is refused.
    let h = signed();
    let parent = step(&h, request("order", "Start", json!({"input": 3}))).unwrap();
    let call = parent["children"][0].clone();
    let child = |input: Value, id: &Value, ticket: &Value| {
        json!({"workflow": "checkout", "at": "Start", "execution": "arn:child",
               "document": {"input": input, "id": id, "ticket": ticket}})
    };
    let genuine = step(
        &h,
        child(call["input"].clone(), &call["id"], &call["ticket"]),
    )
    .unwrap();
    assert_eq!(genuine["execution"], call["id"]);
    for (input, id, ticket) in [
        (json!(4), call["id"].clone(), call["ticket"].clone()),
        (
            call["input"].clone(),
            json!("victim/1.0"),
            call["ticket"].clone(),
        ),
        (call["input"].clone(), call["id"].clone(), json!("00")),
    ] {
        assert_eq!(
            name(step(&h, child(input, &id, &ticket))),
            "Workflow.InvalidRequest"
        );
    }
    // Without a key there are no tickets: a child's id is its own `$$.Execution.Id`.
    let plain = unsigned();
    let parent = step(&plain, request("order", "Start", json!({"input": 3}))).unwrap();
    assert_eq!(parent["children"][0]["ticket"], Value::Null);
    let doc = step(&plain, child(json!(3), &json!("victim/1.0"), &Value::Null)).unwrap();
    assert_eq!(doc["execution"], "arn:child");
    // And a document whose id has a `/` cannot come from an unsigned handler.
    let mut doc = step(&plain, request("checkout", "Start", json!({"input": 5}))).unwrap();
    doc["execution"] = json!("victim/1.0");
    assert_eq!(
        name(step(&plain, request("checkout", "shop.charge", doc))),
        "Workflow.InvalidRequest"
    );
}

#[test]
fn an_oversized_request_is_refused_before_it_is_parsed() {
    let h = unsigned();
    assert_eq!(
        h.request_limit(),
        DEFAULT_PAYLOAD_LIMIT + workflow::asl::REQUEST_ENVELOPE
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Not even JSON: refused for its size, so it was never parsed.
    let bytes = vec![b'['; h.request_limit() + 1];
    match rt.block_on(h.handle_bytes(&bytes)) {
        Err(StepError::PayloadTooLarge { what, size, limit }) => {
            assert_eq!(
                (what, size, limit),
                (StepPayload::Request, bytes.len(), h.request_limit())
            );
        }
        other => panic!("{other:?}"),
    }
    // A 10 MB state does not run.
    let mut doc = step(&h, request("checkout", "Start", json!({"input": 5}))).unwrap();
    doc["state"] = json!({"AfterShopCharge": {"receipt": 1, "padding": "x".repeat(10 << 20)}});
    let e = step(&h, request("checkout", "shop.charge", doc)).unwrap_err();
    assert!(
        matches!(
            e,
            StepError::PayloadTooLarge {
                what: StepPayload::Request,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.name(), "Workflow.PayloadTooLarge");
    // The limit is the builder's.
    let small = builder().payload_limit(1024).build().unwrap();
    let padded = request(
        "checkout",
        "Start",
        json!({"input": 5, "note": "x".repeat(6000)}),
    );
    assert_eq!(
        name(step(&small, padded.clone())),
        "Workflow.PayloadTooLarge"
    );
    assert!(step(&h, padded).is_ok());
}

#[test]
fn an_oversized_answer_is_refused() {
    let h = unsigned();
    // A task whose result (in the state after it) is over 256 KiB.
    let e = step(&h, request("big", "Start", json!({"input": 300_000}))).unwrap_err();
    match &e {
        StepError::PayloadTooLarge { what, size, limit } => {
            assert_eq!(
                (*what, *limit),
                (StepPayload::Answer, DEFAULT_PAYLOAD_LIMIT)
            );
            assert!(*size > 300_000);
        }
        other => panic!("{other:?}"),
    }
    assert!(step(&h, request("big", "Start", json!({"input": 1000}))).is_ok());
    let small = builder().payload_limit(512).build().unwrap();
    assert_eq!(
        name(step(
            &small,
            request("big", "Start", json!({"input": 1000}))
        )),
        "Workflow.PayloadTooLarge"
    );
}

/// Serves `input` and returns the answer lines.
fn serve(handler: &StepHandler, input: impl Read) -> Vec<Value> {
    let mut out = Vec::new();
    serve_json_lines(handler, BufReader::new(input), &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn line(id: u32, workflow: &str, input: Value) -> Vec<u8> {
    let mut l = json!({"id": id, "workflow": workflow, "at": "Start", "execution": EXECUTION,
                       "document": {"input": input}})
    .to_string()
    .into_bytes();
    l.push(b'\n');
    l
}

#[test]
fn bad_lines_over_json_lines_are_answered_and_the_next_request_too() {
    let h = unsigned();
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"id\": 1, \"workflow\": \"\xff\xfe\"}\n"); // not UTF-8
    input.extend_from_slice(&line(2, "checkout", json!(5)));
    input.extend(std::iter::repeat_n(b'x', h.request_limit() + 10)); // too long
    input.push(b'\n');
    input.extend_from_slice(b"{not json\n");
    input.extend_from_slice(&line(3, "checkout", json!(6)));
    let answers = serve(&h, &input[..]);
    let summary: Vec<(Value, Value)> = answers
        .iter()
        .map(|a| (a["id"].clone(), a["error"]["name"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (Value::Null, json!("Workflow.InvalidRequest")),
            (json!(2), Value::Null),
            (Value::Null, json!("Workflow.PayloadTooLarge")),
            (Value::Null, json!("Workflow.InvalidRequest")),
            (json!(3), Value::Null),
        ]
    );
    assert!(answers[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("UTF-8"));
    assert_eq!(answers[4]["ok"]["next"], "shop.charge");
}

/// `n` bytes of `x` and a newline, made as they are read.
struct LongLine {
    left: usize,
}

impl Read for LongLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(b'x');
        self.left -= n;
        if self.left == 0 {
            buf[n - 1] = b'\n';
        }
        Ok(n)
    }
}

#[test]
fn a_200_mb_line_is_skipped_without_being_held_and_the_next_request_answered() {
    let h = unsigned();
    let started = Instant::now();
    let next = line(1, "checkout", json!(5));
    let input = LongLine { left: 200 << 20 }.chain(&next[..]);
    let mut out = Vec::new();
    // A small limit would not show that the line is dropped as it is read; the default
    // one with a 200 MB line does (held, it would take 200 MB and more to parse).
    serve_json_lines(&h, BufReader::with_capacity(1 << 16, input), &mut out).unwrap();
    let answers: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["error"]["name"], "Workflow.PayloadTooLarge");
    assert_eq!(answers[0]["id"], Value::Null);
    assert_eq!(answers[1]["id"], 1);
    assert_eq!(answers[1]["ok"]["next"], "shop.charge");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_panicking_task_over_json_lines_answers_workflow_panic_and_the_next_request() {
    let h = unsigned();
    let mut input = line(1, "explode", json!(7));
    input.extend_from_slice(&line(2, "checkout", json!(5)));
    input.extend_from_slice(&line(3, "explode", json!(8)));
    let answers = serve(&h, &input[..]);
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["error"]["name"], "Workflow.Panic");
    assert!(answers[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("boom 7"));
    assert_eq!(answers[1]["ok"]["next"], "shop.charge");
    assert_eq!(answers[2]["error"]["name"], "Workflow.Panic");
}

#[test]
fn a_signing_key_must_be_set_and_long_enough() {
    let unset = builder()
        .signing_key_from_env("WORKFLOW_STATE_KEY_OF_NO_TEST")
        .build()
        .unwrap_err();
    assert!(matches!(unset, BuildError::SigningKey { .. }), "{unset}");
    assert!(
        unset.to_string().contains("WORKFLOW_STATE_KEY_OF_NO_TEST"),
        "{unset}"
    );
    let short = builder().signing_key(b"short").build().unwrap_err();
    assert!(matches!(short, BuildError::SigningKey { .. }), "{short}");
    assert!(signed().signing() && !unsigned().signing());
}
