//! JSON merge patch (RFC 7386, `application/merge-patch+json`) as a PATCH request applies it.
//!
//! Input: a target byte ([`skiff_fuzz::Target`]), the live object as JSON on one line, then
//! the patch body.
//!
//! Invariants: no panic; every refusal is a 4xx; a merge patch is idempotent (applying it
//! twice gives what applying it once does, RFC 7386 §1); every top-level `null` of the patch
//! removes its key; the server's whole patch path answers a value or a 4xx.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skiff_apiserver::fuzzing;
use skiff_fuzz::{check_4xx, name_of, patch_input};

const CONTENT_TYPE: &str = "application/merge-patch+json";

fuzz_target!(|data: &[u8]| {
    let Some((target, live, patch)) = patch_input(data) else {
        return;
    };
    let mut once = live.clone();
    match fuzzing::apply_patch(&mut once, patch, CONTENT_TYPE, target.schema()) {
        Ok(()) => {
            let mut twice = once.clone();
            let again = fuzzing::apply_patch(&mut twice, patch, CONTENT_TYPE, target.schema());
            assert!(
                again.is_ok(),
                "a merge patch applied once fails the second time"
            );
            assert_eq!(twice, once, "a merge patch is not idempotent");
            let parsed: Value = serde_json::from_slice(patch).expect("an applied patch is JSON");
            for (k, v) in parsed.as_object().into_iter().flatten() {
                if v.is_null() {
                    assert!(once.get(k).is_none(), "{k}: null in the patch, kept");
                }
            }
        }
        Err(e) => check_4xx(&e, "a merge patch"),
    }
    if let Some(info) = target.info() {
        if let Err(e) = fuzzing::patch(info, name_of(&live), &live, patch, CONTENT_TYPE) {
            check_4xx(&e, "a merge patch request");
        }
    }
});
