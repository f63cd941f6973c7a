//! Maximal marginal relevance: re-rank nearest-neighbour candidates so that each next pick is
//! relevant to the query and unlike the picks before it.

/// Indexes of the candidates in pick order: first the most relevant, then repeatedly the one
/// maximising `lambda * relevance - (1 - lambda) * max similarity to the picked ones`, until
/// `limit` are picked. Ties go to the later candidate, and the remaining candidates keep their
/// order by swap-remove, as Qdrant does, so that equal scores resolve identically.
pub fn select(relevance: &[f32], similarity: &dyn Fn(usize, usize) -> f32, lambda: f32, limit: usize) -> Vec<usize> {
    let mut pending: Vec<usize> = (0..relevance.len()).collect();
    let mut picked = Vec::with_capacity(limit.min(relevance.len()));
    if pending.is_empty() || limit == 0 {
        return picked;
    }
    let first = last_argmax(pending.iter().map(|&i| relevance[i]));
    picked.push(pending.swap_remove(first));
    while picked.len() < limit && !pending.is_empty() {
        let scores: Vec<f32> = pending
            .iter()
            .map(|&c| {
                let closest = picked.iter().map(|&p| similarity(c, p)).fold(f32::NEG_INFINITY, f32::max);
                lambda * relevance[c] - (1.0 - lambda) * closest
            })
            .collect();
        if scores.iter().all(|s| *s == f32::NEG_INFINITY) {
            break;
        }
        let best = last_argmax(scores.into_iter());
        picked.push(pending.swap_remove(best));
    }
    picked
}

/// Position of the largest value; the last one on ties.
fn last_argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v >= best.1 {
            best = (i, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_relevance_keeps_the_nearest_order() {
        let rel = [0.9, 0.5, 0.7];
        assert_eq!(select(&rel, &|_, _| 0.0, 1.0, 3), vec![0, 2, 1]);
    }

    #[test]
    fn diversity_skips_near_duplicates() {
        // 0 and 1 are near-identical; 2 is less relevant but different.
        let rel = [0.9, 0.89, 0.6];
        let sim = |a: usize, b: usize| if a + b == 1 { 0.99 } else { 0.1 };
        assert_eq!(select(&rel, &sim, 0.5, 2), vec![0, 2]);
    }

    #[test]
    fn ties_go_to_the_later_candidate() {
        assert_eq!(select(&[0.5, 0.5], &|_, _| 0.0, 1.0, 1), vec![1]);
        assert!(select(&[], &|_, _| 0.0, 0.5, 3).is_empty());
    }
}
