//! The Rust runner of the shared DOM corpus (tests/fixtures/dom_corpus.json, format in the
//! kit's corpus brief): every case runs on a fresh `Dom` and must end with the body, the
//! refusals, the properties and the calls Chromium's run of tether.js gave.
//!
//! For: `cargo test --features testing --lib testing::`.
//! Never: special-cases a case by name; a failing case is reported with what was expected
//! and what the model gave, every one of them, not only the first.

use serde_json::{Map, Value, json};

use super::Dom;
use super::events::{bubbles, event_fields, is_gesture};

fn first(dom: &Dom, sel: &str) -> Result<kuchikiki::NodeRef, String> {
    match dom.select_first(sel) {
        Ok(Some(el)) => Ok(el),
        Ok(None) => Err(format!("no element matches {sel}")),
        Err(e) => Err(e),
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// What running one case gave: `(body, refused, props, calls)`.
fn run_case(case: &Value) -> Result<(String, u64, Vec<Value>, Vec<Value>), String> {
    let body = str_of(case, "body");
    let mut dom = Dom::parse(&format!(
        "<!DOCTYPE html><html><head></head><body>{body}</body></html>"
    ));
    let exec_js = case
        .get("exec_js")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut refused = 0;
    let mut calls = Vec::new();
    let steps = case
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for step in &steps {
        let Some((kind, arg)) = step.as_object().and_then(|o| o.iter().next()) else {
            return Err(format!("a step is not an object: {step}"));
        };
        match kind.as_str() {
            "patch" => {
                if dom.apply_patch(arg, exec_js, &mut |_| {}).is_err() {
                    refused += 1;
                }
            }
            "type" => {
                let el = first(&dom, str_of(arg, "sel"))?;
                dom.set_value(&el, str_of(arg, "value"));
            }
            "check" => {
                let el = first(&dom, str_of(arg, "sel"))?;
                dom.set_checked(
                    &el,
                    arg.get("checked").and_then(Value::as_bool).unwrap_or(false),
                );
            }
            "presence_list" => dom.render_presence_lists(arg),
            "count" => dom.render_count(arg),
            "describe" => {
                let target = first(&dom, str_of(arg, "sel"))?;
                let event: Map<String, Value> = arg
                    .get("event")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let event_type = event
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let bubbles = event
                    .get("bubbles")
                    .and_then(Value::as_bool)
                    .unwrap_or(bubbles(&event_type));
                let fields = event_fields(&event_type, &event);
                let Some(bound) = dom.bound_element(&target, &event_type, bubbles, &is_gesture)
                else {
                    continue;
                };
                let Some(text) = dom
                    .handlers_of(&bound, &event_type, &is_gesture)
                    .into_iter()
                    .next()
                else {
                    continue;
                };
                match dom.handler_call(&bound, &text) {
                    Ok((handler, call_arg)) => {
                        let sender = dom.describe_at(&bound, Some(&target), &fields, call_arg);
                        calls.push(json!({"handler": handler, "sender": sender}));
                    }
                    Err(e) => calls.push(json!({"error": e})),
                }
            }
            other => return Err(format!("unknown step {other}")),
        }
    }
    let body = dom.inner_html(&dom.body());
    let mut props = Vec::new();
    let wanted = case
        .pointer("/expect/props")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in &wanted {
        let el = first(&dom, str_of(p, "sel"))?;
        let prop = str_of(p, "prop");
        props.push(
            json!({"sel": str_of(p, "sel"), "prop": prop, "value": dom.read_prop(&el, prop)}),
        );
    }
    Ok((body, refused, props, calls))
}

/// Runs every case of a corpus; the failures, each with its name, expected and actual.
pub(super) fn run_corpus(corpus: &str) -> Result<(usize, Vec<String>), String> {
    let corpus: Value =
        serde_json::from_str(corpus).map_err(|e| format!("the corpus is not JSON: {e}"))?;
    let cases = corpus
        .get("cases")
        .and_then(Value::as_array)
        .ok_or("the corpus has no cases")?;
    let mut failures = Vec::new();
    for case in cases {
        let name = str_of(case, "name");
        let expect = case.get("expect").cloned().unwrap_or(Value::Null);
        let (body, refused, props, calls) = match run_case(case) {
            Ok(got) => got,
            Err(e) => {
                failures.push(format!("{name}: could not run: {e}"));
                continue;
            }
        };
        let mut diffs = Vec::new();
        let want_body = str_of(&expect, "body");
        if body != want_body {
            diffs.push(format!(
                "  body\n    expected: {want_body}\n    actual:   {body}"
            ));
        }
        let want_refused = expect.get("refused").and_then(Value::as_u64).unwrap_or(0);
        if refused != want_refused {
            diffs.push(format!(
                "  refused: expected {want_refused}, actual {refused}"
            ));
        }
        if let Some(want) = expect.get("props").and_then(Value::as_array) {
            for (w, got) in want.iter().zip(&props) {
                if w.get("value") != got.get("value") {
                    diffs.push(format!(
                        "  prop {} of {}: expected {}, actual {}",
                        str_of(w, "prop"),
                        str_of(w, "sel"),
                        w.get("value").unwrap_or(&Value::Null),
                        got.get("value").unwrap_or(&Value::Null)
                    ));
                }
            }
        }
        let want_calls = expect
            .get("calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if want_calls != calls {
            diffs.push(format!(
                "  calls\n    expected: {}\n    actual:   {}",
                Value::Array(want_calls),
                Value::Array(calls.clone())
            ));
        }
        if !diffs.is_empty() {
            failures.push(format!("{name}:\n{}", diffs.join("\n")));
        }
    }
    Ok((cases.len(), failures))
}

fn assert_corpus(corpus: &str) {
    let (count, failures) = match run_corpus(corpus) {
        Ok(result) => result,
        Err(e) => panic!("{e}"),
    };
    assert!(count > 0, "the corpus has no cases");
    assert!(
        failures.is_empty(),
        "{} of {count} cases differ from the browser:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_cases_match_the_browser() {
    assert_corpus(include_str!("../../../tests/fixtures/dom_corpus.json"));
}

#[test]
fn own_cases_match_the_browser() {
    assert_corpus(include_str!("own_cases.json"));
}

#[test]
fn a_wrong_expectation_is_reported_by_name() {
    let corpus = r#"{"cases": [{"name": "wrong on purpose", "body": "<p>a</p>", "steps": [],
        "expect": {"body": "<p>b</p>"}}]}"#;
    let (count, failures) = run_corpus(corpus).unwrap_or_default();
    assert_eq!(count, 1);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with("wrong on purpose"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("<p>b</p>") && failures[0].contains("<p>a</p>"),
        "{}",
        failures[0]
    );
}

/// Runs the corpus file named by `TETHER_DOM_CORPUS` (for checking the model against a
/// corpus of outputs Chromium produced, e.g. generated cases); ignored unless asked for:
/// `TETHER_DOM_CORPUS=path cargo test --features testing --lib corpus_file -- --ignored`.
#[test]
#[ignore = "needs TETHER_DOM_CORPUS"]
fn corpus_file_from_the_environment_matches_the_browser() {
    let path = std::env::var("TETHER_DOM_CORPUS").unwrap_or_default();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("TETHER_DOM_CORPUS={path}: {e}"));
    assert_corpus(&text);
}
