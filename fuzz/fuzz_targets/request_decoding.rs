//! Every path a request's bytes take before an object is stored or listed: bodies (JSON,
//! YAML, protobuf) decoded, type-checked and normalized through a kind; label and field
//! selectors parsed, checked against the kind's fields and matched; continue tokens;
//! URL paths; query strings with a delete's body.
//!
//! Input: a mode byte, a kind byte ([`skiff_fuzz::kind`]), then the payload:
//! - `j`, `y`, `p`: a create body as JSON, YAML or protobuf;
//! - `l`, `f`: a label or field selector (the whole payload);
//! - `m`: a label selector line, a field selector line, then a JSON object to match;
//! - `c`: a continue token; `u`: a URL path;
//! - `q`: a query string line, then a delete's body;
//! - any other byte: the payload through all of the above.
//!
//! Invariants: no panic; every refusal is a 4xx; a selector's canonical form parses back to
//! the same terms; a valid continue token encodes back to one that decodes the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skiff_api::registry::ResourceInfo;
use skiff_api::selector::{check_fields, FieldSelector, LabelSelector};
use skiff_apiserver::fuzzing;
use skiff_apiserver::objects::{decode_continue, encode_continue};
use skiff_apiserver::path::{self, Route};
use skiff_fuzz::{check_4xx, kind};

const CONTENT_TYPES: [&str; 3] = [
    "application/json",
    "application/yaml",
    skiff_api::protobuf::CONTENT_TYPE,
];

fn body(info: &ResourceInfo, bytes: &[u8], content_type: &str) {
    match fuzzing::decode_body(bytes, content_type) {
        Ok(obj) => assert!(obj.is_object(), "a decoded body is an object"),
        Err(e) => check_4xx(&e, "decoding a body"),
    }
    for query in ["", "fieldValidation=Strict", "fieldValidation=Ignore"] {
        if let Err(e) = fuzzing::create_body(info, bytes, content_type, query) {
            check_4xx(&e, "a create body");
        }
    }
}

fn label_selector(text: &str) -> Option<LabelSelector> {
    let selector = LabelSelector::parse(text).ok()?;
    let canonical = selector.to_string();
    assert_eq!(
        LabelSelector::parse(&canonical).as_ref(),
        Ok(&selector),
        "label selector {text:?} prints as {canonical:?}, which parses differently"
    );
    Some(selector)
}

fn field_selector(info: &ResourceInfo, text: &str) -> Option<FieldSelector> {
    let selector = FieldSelector::parse(text).ok()?;
    let canonical = selector.to_string();
    // The same terms, in any order: terms are ordered by their raw text, as upstream orders
    // them, and the canonical form writes `==` as `=` and escapes values its own way.
    let terms = |s: &FieldSelector| {
        let mut terms: Vec<String> = s.requirements().iter().map(|r| format!("{r:?}")).collect();
        terms.sort();
        terms
    };
    assert_eq!(
        FieldSelector::parse(&canonical).map(|c| terms(&c)),
        Ok(terms(&selector)),
        "field selector {text:?} prints as {canonical:?}, which parses differently"
    );
    let _ = check_fields(info.group, info.plural, &selector);
    Some(selector)
}

/// A raw query string that carries `value` as parameter `key`, percent-encoded.
fn query_with(key: &str, value: &str) -> String {
    let mut q = format!("{key}=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() {
            q.push(char::from(b));
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

fn options(info: &ResourceInfo, query: &str, delete_body: &[u8]) {
    if let Err(e) = fuzzing::request_options(info, query, delete_body) {
        check_4xx(&e, "request options");
    }
}

fn selectors(info: &ResourceInfo, text: &str) {
    label_selector(text);
    field_selector(info, text);
    options(info, &query_with("labelSelector", text), b"");
    options(info, &query_with("fieldSelector", text), b"");
}

fn matching(info: &ResourceInfo, payload: &[u8]) {
    let (labels, rest) = split_line(payload);
    let (fields, obj) = split_line(rest);
    let Ok(obj) = serde_json::from_slice::<Value>(obj) else {
        return;
    };
    if let Some(l) = label_selector(&String::from_utf8_lossy(labels)) {
        l.matches_object(&obj);
    }
    if let Some(f) = field_selector(info, &String::from_utf8_lossy(fields)) {
        let _ = f.matches_object(info.group, info.plural, &obj);
    }
}

fn continue_token(text: &str) {
    match decode_continue(text) {
        Ok((rv, start)) => {
            let again = decode_continue(&encode_continue(rv, &start));
            assert_eq!(again.ok(), Some((rv, start)), "token {text:?}");
        }
        Err(e) => check_4xx(&e, "a continue token"),
    }
    options(kind(0), &query_with("continue", text), b"");
}

fn url_path(text: &str) {
    if let Some(Route::Resource(t)) = path::parse(text) {
        assert!(!t.resource.is_empty(), "{text:?} addresses no resource");
        let _ = skiff_fuzz::registry().get(&t.group, &t.version, &t.resource);
    }
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, kind_byte, payload @ ..] = data else {
        return;
    };
    let info = kind(*kind_byte);
    let text = String::from_utf8_lossy(payload);
    match mode {
        b'j' => body(info, payload, CONTENT_TYPES[0]),
        b'y' => body(info, payload, CONTENT_TYPES[1]),
        b'p' => body(info, payload, CONTENT_TYPES[2]),
        b'l' | b'f' => selectors(info, &text),
        b'm' => matching(info, payload),
        b'c' => continue_token(&text),
        b'u' => url_path(&text),
        b'q' => {
            let (query, delete_body) = split_line(payload);
            options(info, &String::from_utf8_lossy(query), delete_body);
        }
        _ => {
            for ct in CONTENT_TYPES {
                body(info, payload, ct);
            }
            selectors(info, &text);
            matching(info, payload);
            continue_token(&text);
            url_path(&text);
            options(info, &text, payload);
        }
    }
});
