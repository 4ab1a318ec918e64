//! The `pod-template-hash`: the suffix of a Deployment's ReplicaSet names and the label that
//! keeps their pods apart. Upstream's `controller.ComputeHash` is FNV-32a over the template
//! printed by go-spew (`hashutil.DeepHashObject`: Go type and field names, every zero field
//! of the Go structs), then the collision count as 8 little-endian bytes, the sum written in
//! decimal and mapped through `rand.SafeEncodeString`'s alphabet. The go-spew rendering of
//! Go's structs cannot be reproduced from k8s-openapi's types (it depends on the Go field
//! order and on every field Go's struct has in that release), so this hashes a canonical
//! JSON of the template instead (keys sorted, empty values and the hash label dropped): the
//! same steps and alphabet, a stable value, but not upstream's value for the same template.
//! Upstream's own hash changes across releases too; nothing relies on the value.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::util::canonical_template;

/// `rand.SafeEncodeString`'s alphabet: no vowels, no look-alike characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Upstream's `rand.SafeEncodeString`: each byte mapped into [`ALPHANUMS`].
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// FNV-1a, 32 bits (Go's `hash/fnv.New32a`).
#[derive(Clone, Copy)]
struct Fnv32a(u32);

impl Fnv32a {
    fn new() -> Self {
        Self(0x811c_9dc5)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

/// Writes `v` with sorted object keys, whatever order the map keeps them in.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = m.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The pod-template-hash of `template` with the Deployment's `collisionCount`.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut text = String::new();
    write_canonical(&canonical_template(template), &mut text);
    let mut h = Fnv32a::new();
    h.write(text.as_bytes());
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h.write(&bytes);
    }
    safe_encode(&h.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn fnv32a_and_the_safe_alphabet_are_gos() {
        // Go: fnv.New32a() over "hello" sums to 1335831723.
        let mut h = Fnv32a::new();
        h.write(b"hello");
        assert_eq!(h.0, 1_335_831_723);
        // Go: rand.SafeEncodeString maps each byte to alphanums[b % 27], so decimal digits
        // become 4-9, b, c, d, f (as in upstream's `web-7d4b9c8f6`).
        assert_eq!(safe_encode("1335831723"), "5779d75c67");
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn the_hash_is_stable_and_follows_the_template_and_collisions() {
        let a = template(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}));
        // The same template written in another key order, with empty fields and a hash label.
        let same = template(
            json!({"spec": {"containers": [{"image": "nginx:1", "name": "c", "args": []}]},
            "metadata": {"annotations": {}, "labels": {"pod-template-hash": "zzz", "app": "web"}}}),
        );
        let b = template(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}));
        let h = compute_hash(&a, None);
        assert_eq!(h, compute_hash(&same, None));
        assert_ne!(h, compute_hash(&b, None));
        assert_ne!(h, compute_hash(&a, Some(1)));
        assert_eq!(compute_hash(&a, Some(1)), compute_hash(&a, Some(1)));
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)), "{h}");
        // Pinned: a change here renames every Deployment's ReplicaSets.
        assert_eq!(h, compute_hash(&a, None));
        assert_eq!(compute_hash(&a, None), PINNED);
    }

    /// The hash of the first template above, pinned so that changing the canonical form is
    /// a deliberate act.
    const PINNED: &str = "79bfd649dc";
}
