//! JSON patch (RFC 6902, `application/json-patch+json`) as a PATCH request applies it.
//!
//! Input: a target byte ([`skiff_fuzz::Target`]), the live object as JSON on one line, then
//! the patch body.
//!
//! Invariants: no panic; every refusal is a 4xx; a patch is atomic (RFC 6902 §5: a failed
//! patch leaves the document as it was); a patch of only `test` operations that succeeds
//! changes nothing; the server's whole patch path (name and type checks, normalizing
//! through the kind) answers a value or a 4xx.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skiff_apiserver::fuzzing;
use skiff_fuzz::{check_4xx, name_of, patch_input};

const CONTENT_TYPE: &str = "application/json-patch+json";

fn only_tests(patch: &[u8]) -> bool {
    serde_json::from_slice::<Vec<Value>>(patch).is_ok_and(|ops| {
        ops.iter()
            .all(|op| op.get("op").and_then(Value::as_str) == Some("test"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((target, live, patch)) = patch_input(data) else {
        return;
    };
    let mut obj = live.clone();
    match fuzzing::apply_patch(&mut obj, patch, CONTENT_TYPE, target.schema()) {
        Ok(()) if only_tests(patch) => {
            assert_eq!(obj, live, "a patch of only tests changed the document")
        }
        Ok(()) => {}
        Err(e) => {
            check_4xx(&e, "a JSON patch");
            assert_eq!(obj, live, "a failed JSON patch left the document changed");
        }
    }
    if let Some(info) = target.info() {
        if let Err(e) = fuzzing::patch(info, name_of(&live), &live, patch, CONTENT_TYPE) {
            check_4xx(&e, "a JSON patch request");
        }
    }
});
