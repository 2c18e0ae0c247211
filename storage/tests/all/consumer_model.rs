//! Model-based test of the shared consumer log: random adds, updates, meta changes, removals
//! and reopens (on a simulated disk, compacting often) against a trivial model: a list of
//! named consumers, each a memory store fed the same updates.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jetway_storage::{
    AckPolicy, ConsumerState, ConsumerStore, MemConsumerStore, SharedConsumer, SharedConsumerLog, SimIo,
    StoreError, SyncPolicy,
};
use proptest::prelude::*;

use crate::common::fast_engine;

const NAMES: usize = 6;
const POLICIES: [AckPolicy; 3] = [AckPolicy::None, AckPolicy::All, AckPolicy::Explicit];

#[derive(Debug, Clone)]
enum Op {
    Add { name: usize, meta_len: usize, policy: usize },
    Remove(usize),
    SetMeta(usize, u8),
    Delivered { name: usize, seq: u64, count: u64 },
    Ack { name: usize, seq: u64 },
    Full(usize, u64),
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..NAMES, 0..64usize, 0..3usize).prop_map(|(name, meta_len, policy)| Op::Add { name, meta_len, policy }),
        1 => (0..NAMES).prop_map(Op::Remove),
        1 => (0..NAMES, any::<u8>()).prop_map(|(n, b)| Op::SetMeta(n, b)),
        6 => (0..NAMES, 1..40u64, 1..4u64).prop_map(|(name, seq, count)| Op::Delivered { name, seq, count }),
        3 => (0..NAMES, 1..40u64).prop_map(|(name, seq)| Op::Ack { name, seq }),
        1 => (0..NAMES, 0..40u64).prop_map(|(n, s)| Op::Full(n, s)),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn name(i: usize) -> String {
    format!("consumer-{i}")
}

/// A consumer in the model.
struct Modelled {
    name: String,
    meta: Vec<u8>,
    policy: AckPolicy,
    state: MemConsumerStore,
}

/// What reopen gives back, per consumer in the order they were added.
type Restored = Vec<(String, Vec<u8>, AckPolicy, ConsumerState)>;

/// The log under test: its handles (also of removed consumers, which must refuse writes).
struct Real {
    log: Arc<SharedConsumerLog>,
    handles: HashMap<String, Arc<SharedConsumer>>,
}

fn open(sim: &SimIo, engine: &jetway_storage::Engine) -> (Real, Restored) {
    let opened =
        SharedConsumerLog::open_with(engine, Arc::new(sim.clone()), Path::new("/m"), SyncPolicy::Always)
            .unwrap();
    assert_eq!(opened.damage, None);
    opened.log.set_compact_min(256);
    let restored = opened
        .consumers
        .iter()
        .map(|c| (c.name.clone(), c.meta.clone(), c.consumer.policy(), c.consumer.state()))
        .collect();
    let handles = opened.consumers.into_iter().map(|c| (c.name, c.consumer)).collect();
    (Real { log: opened.log, handles }, restored)
}

fn a_state(seed: u64) -> ConsumerState {
    let model = MemConsumerStore::new(AckPolicy::Explicit);
    for i in 1..=seed % 5 {
        model.update_delivered(i, seed + i, i, i as i64).unwrap();
    }
    model.state()
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let engine = fast_engine();
    let sim = SimIo::new();
    let (mut real, _) = open(&sim, &engine);
    let mut model: Vec<Modelled> = Vec::new();
    for op in ops {
        let find = |model: &[Modelled], i: usize| model.iter().position(|m| m.name == name(i));
        match op {
            Op::Add { name: i, meta_len, policy } => {
                let (n, meta, policy) = (name(*i), vec![*i as u8; *meta_len], POLICIES[*policy]);
                let got = real.log.add(&n, meta.clone(), policy, None);
                if find(&model, *i).is_some() {
                    prop_assert!(matches!(got, Err(StoreError::ConsumerExists(_))));
                } else {
                    real.handles.insert(n.clone(), got.unwrap());
                    model.push(Modelled { name: n, meta, policy, state: MemConsumerStore::new(policy) });
                }
            }
            Op::Remove(i) => {
                let got = real.log.remove(&name(*i), None);
                match find(&model, *i) {
                    Some(at) => {
                        got.unwrap();
                        model.remove(at);
                    }
                    None => prop_assert!(matches!(got, Err(StoreError::ConsumerNotFound(_)))),
                }
            }
            Op::SetMeta(i, b) => {
                let meta = vec![*b; *b as usize % 64];
                let got = real.log.set_meta(&name(*i), meta.clone(), None);
                match find(&model, *i) {
                    Some(at) => {
                        got.unwrap();
                        model[at].meta = meta;
                    }
                    None => prop_assert!(matches!(got, Err(StoreError::ConsumerNotFound(_)))),
                }
            }
            Op::Delivered { name: i, .. } | Op::Ack { name: i, .. } | Op::Full(i, _) => {
                let Some(handle) = real.handles.get(&name(*i)) else { continue };
                let apply = |s: &dyn ConsumerStore| match op {
                    Op::Delivered { seq, count, .. } => s.update_delivered(*seq, *seq, *count, *seq as i64),
                    Op::Ack { seq, .. } => s.update_acks(*seq, *seq),
                    Op::Full(_, seed) => s.update(&a_state(*seed)),
                    _ => Ok(()),
                };
                let got = apply(&**handle);
                match find(&model, *i) {
                    Some(at) => {
                        got.unwrap();
                        apply(&model[at].state).unwrap();
                    }
                    None => prop_assert!(matches!(got, Err(StoreError::Closed)), "a removed consumer wrote"),
                }
            }
            Op::Compact => real.log.compact().unwrap(),
            Op::Reopen => {
                real.log.stop().unwrap();
                let (again, restored) = open(&sim, &engine);
                real = again;
                let want: Restored = model
                    .iter()
                    .map(|m| (m.name.clone(), m.meta.clone(), m.policy, m.state.state()))
                    .collect();
                prop_assert_eq!(restored, want);
            }
        }
        prop_assert_eq!(real.log.len(), model.len());
        for m in &model {
            prop_assert_eq!(real.log.meta(&m.name), Some(m.meta.clone()));
            prop_assert_eq!(real.handles[&m.name].state(), m.state.state(), "{}", m.name);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn shared_log_matches_the_model_across_reopen(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}
