//! Model-based test: random operations against a trivial model and the real stores must give
//! the same observable state, including across reopen (file store on a simulated disk).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jetway_storage::{
    Engine, FileStore, Io, MemStore, NewMessage, PurgeOptions, SimIo, StreamConfig, StreamStore,
    SubjectFilter,
};
use proptest::prelude::*;

use crate::common::fast_engine;

const SUBJECTS: [&str; 4] = ["a.1", "a.2", "b.1", "c"];
const FILTERS: [&str; 6] = ["a.1", "a.*", "b.>", ">", "c", "*.1"];

#[derive(Debug, Clone)]
enum Op {
    Append(usize, u8),
    Remove(u64),
    PurgeAll,
    PurgeFilter(usize, Option<u64>),
    Compact(u64),
    Truncate(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..SUBJECTS.len(), any::<u8>()).prop_map(|(s, p)| Op::Append(s, p)),
        2 => (0..40u64).prop_map(Op::Remove),
        1 => Just(Op::PurgeAll),
        1 => (0..FILTERS.len(), proptest::option::of(0..3u64)).prop_map(|(f, k)| Op::PurgeFilter(f, k)),
        1 => (0..45u64).prop_map(Op::Compact),
        1 => (0..45u64).prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
    ]
}

/// The trivial model: a map plus first/last sequence, with the same limits.
#[derive(Debug, Default)]
struct Model {
    msgs: BTreeMap<u64, (String, Vec<u8>)>,
    first: u64,
    last: u64,
}

const MAX_MSGS: usize = 12;
const MAX_PER_SUBJECT: usize = 4;

impl Model {
    fn fix_first(&mut self) {
        self.first = self.msgs.keys().next().copied().unwrap_or(self.last + 1);
    }
    fn remove(&mut self, seq: u64) {
        if self.msgs.remove(&seq).is_some() {
            self.fix_first();
        }
    }
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(s, p) => {
                self.last += 1;
                let subject = SUBJECTS[*s].to_string();
                self.msgs.insert(self.last, (subject.clone(), payload(*p)));
                if self.msgs.len() == 1 {
                    self.first = self.last;
                }
                let of_subject: Vec<u64> =
                    self.msgs.iter().filter(|(_, m)| m.0 == subject).map(|(s, _)| *s).collect();
                for seq in of_subject.iter().take(of_subject.len().saturating_sub(MAX_PER_SUBJECT)) {
                    self.remove(*seq);
                }
                while self.msgs.len() > MAX_MSGS {
                    self.remove(self.first);
                }
            }
            Op::Remove(seq) => self.remove(*seq),
            Op::PurgeAll => {
                self.msgs.clear();
                self.first = self.last + 1;
            }
            Op::PurgeFilter(f, keep) => {
                let f = FILTERS[*f];
                let matching: Vec<u64> = self
                    .msgs
                    .iter()
                    .filter(|(_, m)| jetway_subject::matches(f, &m.0))
                    .map(|(s, _)| *s)
                    .collect();
                let n = matching.len().saturating_sub(keep.unwrap_or(0) as usize);
                for seq in &matching[..n] {
                    self.remove(*seq);
                }
            }
            Op::Compact(seq) => {
                if *seq <= self.first {
                    return;
                }
                if self.msgs.keys().next_back().is_none_or(|l| *l < *seq) {
                    self.msgs.clear();
                    self.first = (*seq).max(self.last + 1);
                    self.last = self.last.max(self.first - 1);
                } else {
                    let below: Vec<u64> = self.msgs.range(..*seq).map(|(s, _)| *s).collect();
                    for s in below {
                        self.remove(s);
                    }
                }
            }
            Op::Truncate(seq) => {
                let above: Vec<u64> = self.msgs.range(seq + 1..).map(|(s, _)| *s).collect();
                for s in above {
                    self.msgs.remove(&s);
                }
                self.last = *seq;
                if self.msgs.is_empty() {
                    self.first = seq + 1;
                } else {
                    self.fix_first();
                }
            }
            Op::Reopen => {}
        }
    }
}

fn payload(p: u8) -> Vec<u8> {
    vec![p; p as usize % 37]
}

fn config() -> StreamConfig {
    let mut c = StreamConfig::named("model");
    c.max_msgs = Some(MAX_MSGS as u64);
    c.max_msgs_per_subject = Some(MAX_PER_SUBJECT as u64);
    // Small blocks: rolling, front deletion and rewrites of sparse blocks all happen.
    c.block_size = 1024;
    c
}

fn apply(store: &dyn StreamStore, op: &Op) {
    match op {
        Op::Append(s, p) => {
            store.append(NewMessage::new(SUBJECTS[*s], payload(*p)), None).unwrap();
        }
        Op::Remove(seq) => {
            store.remove(*seq, *seq % 3 == 0).unwrap();
        }
        Op::PurgeAll => {
            store.purge(&PurgeOptions::default()).unwrap();
        }
        Op::PurgeFilter(f, keep) => {
            store
                .purge(&PurgeOptions { filter: Some(FILTERS[*f].to_string()), keep: *keep, upto_seq: None })
                .unwrap();
        }
        Op::Compact(seq) => {
            store.compact(*seq).unwrap();
        }
        Op::Truncate(seq) => store.truncate(*seq).unwrap(),
        Op::Reopen => {}
    }
}

fn check(store: &dyn StreamStore, model: &Model) -> Result<(), TestCaseError> {
    let st = store.state();
    prop_assert_eq!(st.msgs, model.msgs.len() as u64);
    prop_assert_eq!(st.last_seq, model.last);
    if !(model.last == 0 && model.msgs.is_empty()) {
        prop_assert_eq!(st.first_seq, model.first);
    }
    for (seq, (subject, p)) in &model.msgs {
        let m = store.load(*seq).map_err(|e| TestCaseError::fail(format!("seq {seq}: {e}")))?;
        prop_assert_eq!(&*m.subject, subject.as_str());
        prop_assert_eq!(m.payload.as_ref(), p.as_slice());
    }
    for f in FILTERS {
        let expect = model.msgs.iter().filter(|(_, m)| jetway_subject::matches(f, &m.0)).count() as u64;
        prop_assert_eq!(store.filtered_state(&SubjectFilter::new(&[f]), 0).msgs, expect, "filter {}", f);
        let last = model.msgs.iter().rev().find(|(_, m)| jetway_subject::matches(f, &m.0)).map(|(s, _)| *s);
        prop_assert_eq!(store.load_last(f).ok().map(|m| m.seq), last);
    }
    // Filter lists past the size compared one by one (a consumer's many filters), read from
    // every position.
    let absent = (0..12).map(|i| format!("none.{i}"));
    let literals: Vec<String> = absent.clone().chain(["a.1".into(), "c".into()]).collect();
    let mixed: Vec<String> = absent.chain(["*.2".into(), "b.>".into()]).collect();
    for filters in [&literals, &mixed] {
        let filter = SubjectFilter::new(filters);
        let matching = |seq: &u64| jetway_subject::matches_any(filters, &model.msgs[seq].0);
        for start in 0..=model.last + 1 {
            let from: Vec<u64> = model.msgs.range(start..).map(|(s, _)| *s).filter(matching).collect();
            let st = store.filtered_state(&filter, start);
            prop_assert_eq!(st.msgs, from.len() as u64, "{:?} from {}", filters, start);
            prop_assert_eq!(st.first, from.first().copied().unwrap_or(0), "{:?} from {}", filters, start);
            let next = store.load_next(&filter, start).ok().map(|m| m.seq);
            prop_assert_eq!(next, from.first().copied(), "{:?} from {}", filters, start);
        }
    }
    Ok(())
}

fn run(ops: &[Op], file: bool) -> Result<(), TestCaseError> {
    let engine: Engine = fast_engine();
    let sim = SimIo::new();
    let dir = Path::new("/m");
    let open = || -> Box<dyn StreamStore> {
        if file {
            let io: Arc<dyn Io> = Arc::new(sim.clone());
            Box::new(FileStore::open_with(&engine, io, dir, config()).unwrap())
        } else {
            Box::new(MemStore::new(&engine, config()))
        }
    };
    let mut store = open();
    let mut model = Model::default();
    for op in ops {
        model.apply(op);
        if let Op::Reopen = op {
            if file {
                store.stop().unwrap();
                drop(store);
                store = open();
            }
        } else {
            apply(&*store, op);
        }
        check(&*store, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mem_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops, false)?;
    }

    #[test]
    fn file_store_matches_the_model_across_reopen(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops, true)?;
    }
}
