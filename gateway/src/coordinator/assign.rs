//! Spreading shards over workers, and handing a shard from one worker to
//! another without ever running it twice.

use std::collections::{BTreeMap, BTreeSet};

/// Which shards each worker should run.
pub type Plan = BTreeMap<String, BTreeSet<u32>>;

/// Spreads `shard_count` shards evenly over `workers`, keeping every shard
/// where it already runs when that is still even, and giving no worker more
/// than `per_worker` shards when set. Shards that fit nowhere stay unassigned.
///
/// ```
/// use std::collections::BTreeMap;
/// use shardline_gateway::balance;
/// let workers = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
/// let plan = balance(64, &workers, &BTreeMap::new(), None);
/// let sizes: Vec<usize> = plan.values().map(|shards| shards.len()).collect();
/// assert_eq!(sizes, vec![22, 21, 21]);
/// ```
pub fn balance(
    shard_count: u32,
    workers: &[String],
    current: &Plan,
    per_worker: Option<u32>,
) -> Plan {
    let mut plan: Plan = workers
        .iter()
        .map(|worker| (worker.clone(), BTreeSet::new()))
        .collect();
    if workers.is_empty() {
        return plan;
    }
    let count = u32::try_from(workers.len()).unwrap_or(u32::MAX);
    let mut target = shard_count.div_ceil(count);
    if let Some(cap) = per_worker {
        target = target.min(cap.max(1));
    }
    // Workers with fewer shards than `floor` are owed some by those above it.
    let floor = (shard_count / count).min(target);
    let mut taken = BTreeSet::new();
    for (worker, shards) in &mut plan {
        if let Some(existing) = current.get(worker) {
            for shard in existing
                .iter()
                .copied()
                .filter(|shard| *shard < shard_count)
            {
                if shards.len() < target as usize && taken.insert(shard) {
                    shards.insert(shard);
                }
            }
        }
    }
    // Even out: anyone above `floor` gives back while someone is below it.
    loop {
        let below = plan.values().any(|shards| (shards.len() as u32) < floor);
        if !below {
            break;
        }
        let Some(richest) = plan
            .iter()
            .filter(|(_, shards)| shards.len() as u32 > floor)
            .max_by_key(|(_, shards)| shards.len())
            .map(|(worker, _)| worker.clone())
        else {
            break;
        };
        let Some(shard) = plan.get_mut(&richest).and_then(BTreeSet::pop_last) else {
            break;
        };
        taken.remove(&shard);
    }
    for shard in 0..shard_count {
        if taken.contains(&shard) {
            continue;
        }
        let poorest = plan
            .iter()
            .filter(|(_, shards)| (shards.len() as u32) < target)
            .min_by_key(|(_, shards)| shards.len())
            .map(|(worker, _)| worker.clone());
        match poorest {
            Some(worker) => {
                if let Some(shards) = plan.get_mut(&worker) {
                    shards.insert(shard);
                    taken.insert(shard);
                }
            }
            None => break,
        }
    }
    plan
}

/// What the coordinator knows about one live worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerView {
    /// Shards it reports running (including starting and stopping ones).
    pub running: BTreeSet<u32>,
    /// The revision of its assignment it last applied.
    pub applied_revision: u64,
    /// The revision of the assignment last written for it.
    pub published_revision: u64,
    /// The shards last written for it.
    pub published: BTreeSet<u32>,
}

impl WorkerView {
    /// `true` once the worker has applied the assignment last written for it.
    pub fn caught_up(&self) -> bool {
        self.applied_revision >= self.published_revision
    }
}

/// The assignment to publish next: each worker gets its planned shards, except
/// shards still assigned to or running on another live worker, which wait
/// until that worker has let them go. Shards leave a worker at once.
pub fn next_assignment(plan: &Plan, workers: &BTreeMap<String, WorkerView>) -> Plan {
    let mut next = Plan::new();
    for (worker, planned) in plan {
        let Some(view) = workers.get(worker) else {
            continue;
        };
        let shards = planned
            .iter()
            .copied()
            .filter(|shard| {
                view.published.contains(shard)
                    || workers.iter().all(|(other, other_view)| {
                        other == worker
                            || (!other_view.published.contains(shard)
                                && !other_view.running.contains(shard)
                                && other_view.caught_up())
                    })
            })
            .collect();
        next.insert(worker.clone(), shards);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    fn check_plan(plan: &Plan, shard_count: u32, per_worker: Option<u32>) {
        let mut seen = BTreeSet::new();
        for shards in plan.values() {
            for shard in shards {
                assert!(seen.insert(*shard), "shard {shard} twice in {plan:?}");
                assert!(*shard < shard_count);
            }
        }
        let sizes: Vec<usize> = plan.values().map(BTreeSet::len).collect();
        let (min, max) = (sizes.iter().min().copied(), sizes.iter().max().copied());
        if let (Some(min), Some(max)) = (min, max) {
            assert!(max - min <= 1, "uneven: {sizes:?}");
            if let Some(cap) = per_worker {
                assert!(max <= cap as usize);
            }
        }
        if per_worker.is_none() && !plan.is_empty() {
            assert_eq!(seen.len() as u32, shard_count);
        }
    }

    #[test]
    fn a_dead_workers_shards_spread_over_the_rest() {
        let before = balance(64, &names(&["a", "b", "c"]), &Plan::new(), None);
        let after = balance(64, &names(&["a", "c"]), &before, None);
        check_plan(&after, 64, None);
        // a and c keep everything they had.
        assert!(before["a"].is_subset(&after["a"]));
        assert!(before["c"].is_subset(&after["c"]));
    }

    #[test]
    fn a_new_worker_gets_its_share() {
        let before = balance(10, &names(&["a"]), &Plan::new(), None);
        let after = balance(10, &names(&["a", "b"]), &before, None);
        check_plan(&after, 10, None);
        assert_eq!(after["b"].len(), 5);
    }

    #[test]
    fn shards_per_worker_caps_each_worker() {
        let plan = balance(10, &names(&["a", "b"]), &Plan::new(), Some(3));
        check_plan(&plan, 10, Some(3));
        assert_eq!(plan.values().map(BTreeSet::len).sum::<usize>(), 6);
    }

    #[test]
    fn a_moved_shard_waits_until_the_old_worker_let_it_go() {
        let mut workers = BTreeMap::new();
        workers.insert(
            "a".to_owned(),
            WorkerView {
                running: [0, 1].into(),
                applied_revision: 5,
                published_revision: 5,
                published: [0, 1].into(),
            },
        );
        workers.insert("b".to_owned(), WorkerView::default());
        let plan: Plan = [("a".to_owned(), [0].into()), ("b".to_owned(), [1].into())].into();
        let next = next_assignment(&plan, &workers);
        assert_eq!(next["a"], [0].into());
        assert!(next["b"].is_empty());
        // a got its new assignment (revision 6) but still runs shard 1.
        let a = workers.get_mut("a").unwrap();
        a.published = [0].into();
        a.published_revision = 6;
        assert!(next_assignment(&plan, &workers)["b"].is_empty());
        let a = workers.get_mut("a").unwrap();
        a.applied_revision = 6;
        assert!(next_assignment(&plan, &workers)["b"].is_empty());
        workers.get_mut("a").unwrap().running = [0].into();
        assert_eq!(next_assignment(&plan, &workers)["b"], [1].into());
    }

    proptest::proptest! {
        #[test]
        fn plans_are_even_and_disjoint(
            shard_count in 0u32..200,
            before in proptest::collection::vec(0usize..6, 0..200),
            alive in proptest::collection::vec(proptest::bool::ANY, 6),
            per_worker in proptest::option::of(1u32..80),
        ) {
            let all = names(&["a", "b", "c", "d", "e", "f"]);
            let mut current = Plan::new();
            for (shard, worker) in before.iter().enumerate() {
                current.entry(all[*worker].clone()).or_default().insert(shard as u32);
            }
            let live: Vec<String> = all.iter().zip(&alive).filter(|(_, a)| **a).map(|(w, _)| w.clone()).collect();
            let plan = balance(shard_count, &live, &current, per_worker);
            check_plan(&plan, shard_count, per_worker);
        }
    }
}
