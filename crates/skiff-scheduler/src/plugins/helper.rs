//! Score normalization shared by plugins (upstream's `plugins/helper/normalize_score.go`).

use crate::framework::MAX_NODE_SCORE;

/// Scales scores so the highest is 100 (`reverse`: so the highest is 0 and the lowest 100);
/// all zero stays zero (or all 100 when reversed). Upstream's `DefaultNormalizeScore`.
pub fn default_normalize_score(reverse: bool, scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_as_upstream() {
        let mut s = [10, 5, 0];
        default_normalize_score(false, &mut s);
        assert_eq!(s, [100, 50, 0]);
        let mut s = [10, 5, 0];
        default_normalize_score(true, &mut s);
        assert_eq!(s, [0, 50, 100]);
        let mut s = [0, 0];
        default_normalize_score(true, &mut s);
        assert_eq!(s, [100, 100]);
        let mut s = [0, 0];
        default_normalize_score(false, &mut s);
        assert_eq!(s, [0, 0]);
    }
}
