//! Stable made-up identifiers (container IDs, image digests, machine IDs): hex digits derived
//! from names, the same in every run of every build, so a restarted simulator reports what
//! the one before it reported. Not cryptographic; nothing relies on them being unguessable.

/// `len` hex digits derived from `parts` (FNV-1a, one 64-bit round per 16 digits).
pub fn hex_digest(parts: &[&str], len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut round: u64 = 0;
    while out.len() < len {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for part in parts {
            for byte in part.bytes().chain(std::iter::once(0)) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        // A final mix, so neighbouring inputs do not share leading digits.
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        out.push_str(&format!("{hash:016x}"));
        round += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_sized_and_distinct() {
        let a = hex_digest(&["pod-uid", "web", "0"], 64);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, hex_digest(&["pod-uid", "web", "0"], 64));
        assert_ne!(a, hex_digest(&["pod-uid", "web", "1"], 64));
        // Part boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(hex_digest(&["ab", "c"], 16), hex_digest(&["a", "bc"], 16));
        assert_eq!(hex_digest(&["x"], 5).len(), 5);
    }
}
