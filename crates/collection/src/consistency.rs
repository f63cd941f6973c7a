//! Read consistency (Qdrant's `consistency` / `read_consistency` of reads): how many replicas of
//! a shard a read asks, and which of their answers it keeps. As Qdrant, over the `n` replicas of
//! the shard (whatever their state):
//!
//! - a number `f`: ask `f` replicas (at most `n`), keep what all answers hold;
//! - `all`: ask all `n`, keep what all answers hold;
//! - `majority`: ask all `n`, keep what more than half of the answers hold;
//! - `quorum`: ask `n / 2 + 1`, keep what all answers hold.
//!
//! A count resolves to the smallest answer (all must hold it) or the median (majority). The
//! default (`1`) asks one replica; on one node there is one copy of each shard, read once.

use std::collections::HashMap;
use std::hash::Hash;

/// Which replicas a read asks and how many must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    Factor(usize),
    Majority,
    Quorum,
    All,
}

impl Default for ReadConsistency {
    fn default() -> Self {
        ReadConsistency::Factor(1)
    }
}

/// How a consistent read runs over the replicas of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// Replicas to ask (all must answer).
    pub ask: usize,
    /// Keep what more than half of the answers hold, rather than what all hold.
    pub majority: bool,
}

impl ReadPlan {
    /// Answers, out of `answers`, an item must be in to be kept.
    pub fn agree(&self, answers: usize) -> usize {
        if self.majority {
            answers / 2 + 1
        } else {
            answers
        }
    }
}

impl ReadConsistency {
    /// Parse Qdrant's spelling: `majority`, `quorum`, `all` or a number of at least 1.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "majority" => Ok(ReadConsistency::Majority),
            "quorum" => Ok(ReadConsistency::Quorum),
            "all" => Ok(ReadConsistency::All),
            n => match n.parse::<u64>() {
                Ok(n) => Self::factor(n),
                Err(_) => Err(format!(
                    "unknown read consistency {s:?}: expected a number of replicas, \"majority\", \"quorum\" or \"all\""
                )),
            },
        }
    }

    /// A number of replicas; 0 is refused as Qdrant refuses it.
    pub fn factor(n: u64) -> Result<Self, String> {
        match n {
            0 => Err("Read consistency factor cannot be less than 1".into()),
            n => Ok(ReadConsistency::Factor(usize::try_from(n).unwrap_or(usize::MAX))),
        }
    }

    /// Whether the read asks one replica (the plain, fastest read).
    pub fn is_single(self) -> bool {
        self == ReadConsistency::Factor(1)
    }

    /// The plan over a shard with `replicas` replicas.
    pub fn plan(self, replicas: usize) -> ReadPlan {
        match self {
            ReadConsistency::Factor(f) => ReadPlan { ask: f.clamp(1, replicas.max(1)), majority: false },
            ReadConsistency::All => ReadPlan { ask: replicas, majority: false },
            ReadConsistency::Majority => ReadPlan { ask: replicas, majority: true },
            ReadConsistency::Quorum => ReadPlan { ask: replicas / 2 + 1, majority: false },
        }
    }
}

/// The items that `plan` keeps from `answers`: items with the same `id` agree when `same` says
/// so (first answer's order, then the order in which later answers add items). Each answer
/// counts an item once.
pub fn resolve<T, K: Hash + Eq>(
    answers: Vec<Vec<T>>,
    plan: ReadPlan,
    id: impl Fn(&T) -> K,
    same: impl Fn(&T, &T) -> bool,
) -> Vec<T> {
    let agree = plan.agree(answers.len());
    // Per id, the distinct versions seen: (index into `items`, answers holding it, last answer).
    let mut versions: HashMap<K, Vec<(usize, usize, usize)>> = HashMap::new();
    let mut items: Vec<Option<T>> = Vec::new();
    for (a, answer) in answers.into_iter().enumerate() {
        for item in answer {
            let seen = versions.entry(id(&item)).or_default();
            match seen.iter_mut().find(|(i, _, _)| items[*i].as_ref().is_some_and(|known| same(known, &item))) {
                Some((_, count, last)) => {
                    if *last != a {
                        *count += 1;
                        *last = a;
                    }
                }
                None => {
                    seen.push((items.len(), 1, a));
                    items.push(Some(item));
                }
            }
        }
    }
    let kept: std::collections::HashSet<usize> =
        versions.into_values().flatten().filter(|(_, count, _)| *count >= agree).map(|(i, _, _)| i).collect();
    items.into_iter().enumerate().filter(|(i, _)| kept.contains(i)).filter_map(|(_, item)| item).collect()
}

/// The count `plan` keeps: the smallest answer (all must reach it) or the median (majority).
pub fn resolve_count(mut answers: Vec<usize>, plan: ReadPlan) -> usize {
    answers.sort_unstable();
    let at = if plan.majority { answers.len() / 2 } else { 0 };
    answers.get(at).copied().unwrap_or(0)
}

/// Facet counts `plan` keeps: each value's count resolved as [`resolve_count`] over the
/// answers (an answer without the value counts 0), values left at 0 dropped.
pub fn resolve_facets(
    answers: Vec<Vec<(serde_json::Value, usize)>>,
    plan: ReadPlan,
) -> Vec<(serde_json::Value, usize)> {
    let n = answers.len();
    let mut counts: Vec<(serde_json::Value, Vec<usize>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for answer in answers {
        for (value, count) in answer {
            let i = *at.entry(value.to_string()).or_insert_with(|| {
                counts.push((value.clone(), Vec::with_capacity(n)));
                counts.len() - 1
            });
            counts[i].1.push(count);
        }
    }
    counts
        .into_iter()
        .filter_map(|(value, mut c)| {
            c.resize(n, 0);
            let resolved = resolve_count(c, plan);
            (resolved > 0).then_some((value, resolved))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qdrant_spellings_and_refuses_the_rest() {
        assert_eq!(ReadConsistency::parse("majority"), Ok(ReadConsistency::Majority));
        assert_eq!(ReadConsistency::parse("quorum"), Ok(ReadConsistency::Quorum));
        assert_eq!(ReadConsistency::parse("all"), Ok(ReadConsistency::All));
        assert_eq!(ReadConsistency::parse("2"), Ok(ReadConsistency::Factor(2)));
        assert_eq!(ReadConsistency::parse("0"), Err("Read consistency factor cannot be less than 1".into()));
        assert!(ReadConsistency::parse("most").expect_err("unknown").contains("\"most\""));
        assert!(ReadConsistency::parse("-1").is_err());
        assert!(ReadConsistency::default().is_single());
    }

    #[test]
    fn plans_over_replica_counts() {
        let p = |c: ReadConsistency, n| {
            let plan = c.plan(n);
            (plan.ask, plan.agree(plan.ask))
        };
        assert_eq!(p(ReadConsistency::Factor(1), 3), (1, 1));
        assert_eq!(p(ReadConsistency::Factor(2), 3), (2, 2));
        assert_eq!(p(ReadConsistency::Factor(4), 3), (3, 3), "a factor above the replicas asks them all");
        assert_eq!(p(ReadConsistency::Quorum, 3), (2, 2));
        assert_eq!(p(ReadConsistency::Quorum, 4), (3, 3));
        assert_eq!(p(ReadConsistency::Majority, 3), (3, 2));
        assert_eq!(p(ReadConsistency::All, 3), (3, 3));
        assert_eq!(p(ReadConsistency::All, 1), (1, 1));
        assert_eq!(p(ReadConsistency::Quorum, 1), (1, 1));
    }

    #[test]
    fn keeps_items_enough_answers_hold() {
        let answers =
            vec![vec![(1, 'a'), (2, 'b'), (3, 'c')], vec![(2, 'b'), (1, 'a'), (4, 'd')], vec![(1, 'x'), (2, 'b')]];
        let all = ReadPlan { ask: 3, majority: false };
        let majority = ReadPlan { ask: 3, majority: true };
        // Compared whole: (1, 'x') differs from (1, 'a').
        assert_eq!(resolve(answers.clone(), all, |t| t.0, |a, b| a == b), vec![(2, 'b')]);
        assert_eq!(resolve(answers.clone(), majority, |t| t.0, |a, b| a == b), vec![(1, 'a'), (2, 'b')]);
        // Compared by id only: all three hold 1 (the first answer's item is kept).
        assert_eq!(resolve(answers, all, |t| t.0, |_, _| true), vec![(1, 'a'), (2, 'b')]);
        // An item repeated within one answer counts once.
        assert_eq!(resolve(vec![vec![7, 7], vec![8]], all, |t| *t, |a, b| a == b), Vec::<i32>::new());
    }

    #[test]
    fn facets_resolve_per_value() {
        use serde_json::json;
        let answers = vec![
            vec![(json!("a"), 5), (json!("b"), 2)],
            vec![(json!("a"), 4), (json!("b"), 2), (json!("c"), 1)],
            vec![(json!("a"), 6), (json!(1), 3)],
        ];
        let all = ReadPlan { ask: 3, majority: false };
        let majority = ReadPlan { ask: 3, majority: true };
        assert_eq!(resolve_facets(answers.clone(), all), vec![(json!("a"), 4)]);
        assert_eq!(resolve_facets(answers, majority), vec![(json!("a"), 5), (json!("b"), 2)]);
    }

    #[test]
    fn counts_resolve_to_the_minimum_or_the_median() {
        let all = ReadPlan { ask: 3, majority: false };
        let majority = ReadPlan { ask: 3, majority: true };
        assert_eq!(resolve_count(vec![10, 12, 11], all), 10);
        assert_eq!(resolve_count(vec![10, 12, 11], majority), 11);
        assert_eq!(resolve_count(vec![10, 12, 11, 13], majority), 12);
        assert_eq!(resolve_count(vec![5], all), 5);
        assert_eq!(resolve_count(vec![], all), 0);
    }
}
