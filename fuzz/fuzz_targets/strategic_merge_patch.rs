//! Strategic merge patch (`application/strategic-merge-patch+json`, what `kubectl apply`,
//! `set image` and `rollout restart` send) as a PATCH request applies it, with the
//! Deployment, Pod or Service schema or none.
//!
//! Input: a target byte ([`skiff_fuzz::Target`]), the live object as JSON on one line, then
//! the patch body (seeds carry `$patch`, `$setElementOrder`, `$retainKeys`,
//! `$deleteFromPrimitiveList`).
//!
//! Invariants: no panic; every refusal is a 4xx; a patch with no list and no `$` directive
//! anywhere means what the same JSON merge patch means (for these kinds: none of their map
//! fields has strategy `replace`), and a live object without a schema is merge-patched
//! exactly; the server's whole patch path answers a value or a 4xx.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skiff_api::patch::apply_strategic_merge_patch;
use skiff_apiserver::fuzzing;
use skiff_fuzz::{check_4xx, has_lists_or_directives, name_of, patch_input, Target};

const CONTENT_TYPE: &str = "application/strategic-merge-patch+json";

fuzz_target!(|data: &[u8]| {
    let Some((target, live, patch)) = patch_input(data) else {
        return;
    };
    let schema = target.schema();
    let mut obj = live.clone();
    if let Err(e) = fuzzing::apply_patch(&mut obj, patch, CONTENT_TYPE, schema) {
        check_4xx(&e, "a strategic merge patch");
    }
    if let Ok(parsed) = serde_json::from_slice::<Value>(patch) {
        let plain = parsed.is_object() && live.is_object() && !has_lists_or_directives(&parsed);
        if plain || (target == Target::Schemaless && parsed.is_object() && live.is_object()) {
            let mut merged = live.clone();
            json_patch::merge(&mut merged, &parsed);
            let smp = apply_strategic_merge_patch(&live, &parsed, schema);
            assert_eq!(
                smp.as_ref().ok(),
                Some(&merged),
                "a strategic merge patch without lists or directives is a merge patch: {smp:?}"
            );
        }
    }
    if let Some(info) = target.info() {
        if let Err(e) = fuzzing::patch(info, name_of(&live), &live, patch, CONTENT_TYPE) {
            check_4xx(&e, "a strategic merge patch request");
        }
    }
});
