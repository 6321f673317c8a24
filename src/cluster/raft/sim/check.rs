//! Linearizability of a KV history, one register per key (keys are independent, so each is
//! checked alone): a Wing-Gong search with Lowe's memo of (operations done, register value).
//!
//! Values are unique per write, so a check-and-set on a modify index is a check-and-set on
//! the value read with that index. An operation without an answer (a timed-out write) may
//! take effect at any point after its invocation, or never.

use std::collections::HashSet;

/// One KV operation and what it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// `value`: `None` while unanswered; `Some(None)` read "absent".
    Read {
        value: Option<Option<u32>>,
    },
    Set {
        value: u32,
    },
    /// Set to `new` if the register holds `expect` (`None`: absent). `ok`: the answer, if
    /// any.
    Cas {
        expect: Option<u32>,
        new: u32,
        ok: Option<bool>,
    },
    Delete,
}

/// One operation of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub client: usize,
    pub key: u32,
    /// Virtual time of the invocation and of the answer (`u64::MAX`: none).
    pub invoke: u64,
    pub ret: u64,
    pub op: KvOp,
    /// The encoded command of a write.
    pub command: Vec<u8>,
    /// No answer: may or may not have taken effect.
    pub indeterminate: bool,
}

/// Whether `op` may take effect on `state`, and the state after it.
fn model(state: Option<u32>, op: &KvOp, answered: bool) -> Option<Option<u32>> {
    match *op {
        KvOp::Read { value } => match value {
            Some(v) if answered => (v == state).then_some(state),
            _ => Some(state),
        },
        KvOp::Set { value } => Some(Some(value)),
        KvOp::Delete => Some(None),
        KvOp::Cas { expect, new, ok } => {
            let matches = state == expect;
            match (answered.then_some(ok).flatten(), matches) {
                (Some(true), true) | (None, true) => Some(Some(new)),
                (Some(false), false) | (None, false) => Some(state),
                _ => None,
            }
        }
    }
}

struct Key<'a> {
    ops: Vec<&'a OpRecord>,
    memo: HashSet<(u128, Option<u32>)>,
    /// Bits of the answered operations: all must be linearized.
    must: u128,
}

impl Key<'_> {
    fn answered(&self, i: usize) -> bool {
        self.must & (1 << i) != 0
    }

    fn search(&mut self, done: u128, state: Option<u32>) -> bool {
        if done & self.must == self.must {
            return true;
        }
        // An operation can go next only if it was invoked before every pending answer.
        let horizon = (0..self.ops.len())
            .filter(|&i| done & (1 << i) == 0)
            .map(|i| self.ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..self.ops.len() {
            if done & (1 << i) != 0 || self.ops[i].invoke > horizon {
                continue;
            }
            let Some(next) = model(state, &self.ops[i].op, self.answered(i)) else {
                continue;
            };
            let d = done | (1 << i);
            if self.memo.insert((d, next)) && self.search(d, next) {
                return true;
            }
        }
        false
    }
}

/// `Ok` if every key's history is linearizable; otherwise which key is not, with its
/// operations.
pub fn linearizable(history: &[OpRecord]) -> Result<(), String> {
    let mut keys: Vec<u32> = history.iter().map(|o| o.key).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let ops: Vec<&OpRecord> = history
            .iter()
            .filter(|o| o.key == key)
            // An unanswered read constrains nothing.
            .filter(|o| {
                !(matches!(o.op, KvOp::Read { .. }) && (o.indeterminate || o.ret == u64::MAX))
            })
            .collect();
        if ops.len() > 128 {
            return Err(format!(
                "key {key}: {} operations, more than the checker's 128 (shorten the run)",
                ops.len()
            ));
        }
        let must = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.indeterminate && o.ret != u64::MAX)
            .fold(0u128, |m, (i, _)| m | (1 << i));
        let mut k = Key {
            ops,
            memo: HashSet::new(),
            must,
        };
        if !k.search(0, None) {
            let lines: Vec<String> = k
                .ops
                .iter()
                .map(|o| {
                    let ret = if o.ret == u64::MAX {
                        "?".to_string()
                    } else {
                        o.ret.to_string()
                    };
                    format!("client {} [{}, {ret}] {:?}", o.client, o.invoke, o.op)
                })
                .collect();
            return Err(format!(
                "the history of key {key} is not linearizable:\n  {}",
                lines.join("\n  ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, invoke: u64, ret: u64, op: KvOp) -> OpRecord {
        OpRecord {
            client,
            key: 0,
            invoke,
            ret,
            op,
            command: vec![],
            indeterminate: ret == u64::MAX,
        }
    }

    fn read(v: Option<u32>) -> KvOp {
        KvOp::Read { value: Some(v) }
    }

    #[test]
    fn a_read_after_a_completed_write_must_see_it() {
        let h = [
            op(0, 0, 10, KvOp::Set { value: 1 }),
            op(1, 20, 30, read(None)),
        ];
        let e = linearizable(&h).unwrap_err();
        assert!(e.contains("not linearizable"), "{e}");
        let h = [
            op(0, 0, 10, KvOp::Set { value: 1 }),
            op(1, 20, 30, read(Some(1))),
        ];
        linearizable(&h).unwrap();
    }

    #[test]
    fn a_concurrent_read_may_see_either() {
        for seen in [None, Some(1)] {
            let h = [
                op(0, 0, 30, KvOp::Set { value: 1 }),
                op(1, 10, 20, read(seen)),
            ];
            linearizable(&h).unwrap();
        }
    }

    #[test]
    fn values_cannot_flip_back_between_reads() {
        let h = [
            op(0, 0, 100, KvOp::Set { value: 1 }),
            op(1, 10, 20, read(Some(1))),
            op(2, 30, 40, read(None)),
        ];
        assert!(linearizable(&h).is_err());
    }

    #[test]
    fn an_unanswered_write_may_take_effect_late_or_never() {
        let late = [
            op(0, 0, u64::MAX, KvOp::Set { value: 1 }),
            op(1, 10, 20, read(None)),
            op(1, 30, 40, read(Some(1))),
        ];
        linearizable(&late).unwrap();
        let never = [
            op(0, 0, u64::MAX, KvOp::Set { value: 1 }),
            op(1, 30, 40, read(None)),
        ];
        linearizable(&never).unwrap();
    }

    #[test]
    fn a_cas_answer_must_match_the_register() {
        let cas = |ok| KvOp::Cas {
            expect: None,
            new: 2,
            ok: Some(ok),
        };
        let h = [
            op(0, 0, 10, KvOp::Set { value: 1 }),
            op(1, 20, 30, cas(true)),
        ];
        assert!(linearizable(&h).is_err(), "CAS on absent succeeded over 1");
        let h = [
            op(0, 0, 10, KvOp::Set { value: 1 }),
            op(1, 20, 30, cas(false)),
        ];
        linearizable(&h).unwrap();
        let h = [op(1, 0, 10, cas(true)), op(2, 20, 30, read(Some(2)))];
        linearizable(&h).unwrap();
    }
}
