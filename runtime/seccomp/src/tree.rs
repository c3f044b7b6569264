//! Per-syscall decision trees: how the argument conditions of several rules
//! for one syscall are merged.
//!
//! OCI leaves the meaning of overlapping rules open; runc delegates it to
//! libseccomp, so "runc-compatible" means reproducing libseccomp's merge.
//! Its observable behaviour, which we verify by differential testing:
//!
//! * A rule is a chain of comparisons against 32-bit words, ordered by
//!   argument index. On 64-bit ABIs every condition compares the high word
//!   and then the low word (range operators need a three-node diamond); on
//!   32-bit ABIs (x86, x32, ARM) only the low word exists and the operands
//!   are truncated.
//! * Chains are merged into a tree. Equal comparisons are shared; siblings
//!   are kept in a fixed priority order (higher argument first, high word
//!   before low word, equality before `<`/`<=` before `>`/`>=`, then by
//!   datum), not in profile order. Evaluation tries siblings in that order,
//!   and a failed subtree falls through to the next sibling, so the first
//!   complete path in priority order decides the action.
//! * A rule without conditions overrides the syscall's tree; a later one is
//!   ignored once an unconditional rule exists.
//! * A shorter chain wins over a longer one sharing its prefix. Two rules
//!   whose chains end at the same comparison with different actions (or a
//!   new shorter chain over a subtree with other actions) are a conflict,
//!   which libseccomp (and therefore runc) rejects; so do we.

use std::fmt;

/// An OCI comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

/// One argument condition, normalised: `mask` is all ones except for
/// `MaskedEq`, where it is OCI's `value` and `datum` is `valueTwo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cond {
    pub index: u8,
    pub op: Op,
    pub mask: u64,
    pub datum: u64,
}

/// The BPF comparison a node performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Test {
    Eq,
    MaskedEq,
    Gt,
    Ge,
}

/// Where evaluation goes after a node's comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Branch {
    /// Try the next sibling (or the parent's continuation).
    Fall,
    /// Return this `SECCOMP_RET_*` value.
    Act(u32),
    /// Evaluate this ordered list of alternatives.
    Level(Vec<Node>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub index: u8,
    pub hi: bool,
    pub test: Test,
    /// The operator of the rule this node came from; only used for ordering.
    orig: Op,
    pub mask: u32,
    pub datum: u32,
    /// The rule's full 64-bit datum; decides between actions on shared
    /// high-word `>` nodes.
    full: u64,
    pub t: Branch,
    pub f: Branch,
}

/// Everything the filter does for one syscall number on one architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SyscallRules {
    Always(u32),
    Tree(Vec<Node>),
}

/// Two rules for the same syscall that libseccomp refuses to combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Conflict;

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rules with the same conditions but different actions")
    }
}

impl Node {
    fn new(c: &Cond, hi: bool, test: Test, mask: u32, datum: u32) -> Node {
        Node {
            index: c.index,
            hi,
            test,
            orig: c.op,
            mask,
            datum: datum & mask,
            full: c.datum,
            t: Branch::Fall,
            f: Branch::Fall,
        }
    }

    fn is_leaf(&self) -> bool {
        !matches!(self.t, Branch::Level(_)) && !matches!(self.f, Branch::Level(_))
    }

    fn arg_priority(&self) -> u32 {
        u32::from(self.index) * 2 + u32::from(self.hi)
    }

    fn same_test(&self, other: &Node) -> bool {
        self.arg_priority() == other.arg_priority()
            && self.test == other.test
            && self.datum == other.datum
            && self.mask == other.mask
    }

    /// Sibling order: `self` sorts after `other` (so `other` goes first).
    fn sorts_after(&self, other: &Node) -> bool {
        let (a, b) = (self.arg_priority(), other.arg_priority());
        if a != b {
            return a < b;
        }
        let (a, b) = (op_priority(self.orig), op_priority(other.orig));
        if a != b {
            return a < b;
        }
        match self.orig {
            Op::Lt | Op::Le => self.datum > other.datum,
            _ => self.datum < other.datum,
        }
    }
}

fn op_priority(op: Op) -> u8 {
    match op {
        Op::Eq | Op::MaskedEq | Op::Ne => 3,
        Op::Lt | Op::Le => 2,
        Op::Ge | Op::Gt => 1,
    }
}

/// Builds the chain for one rule, or `None` when no condition remains
/// (libseccomp drops masked comparisons whose mask is zero: they always hold).
pub(crate) fn chain(conds: &[Cond], wide: bool, action: u32) -> Option<Node> {
    let mut sorted: Vec<&Cond> = conds.iter().filter(|c| !is_tautology(c, wide)).collect();
    sorted.sort_by_key(|c| c.index);
    let mut accept = Branch::Act(action);
    let mut head = None;
    for c in sorted.into_iter().rev() {
        let node = if wide {
            wide_cond(c, accept)
        } else {
            narrow_cond(c, accept)
        };
        accept = Branch::Level(vec![node.clone()]);
        head = Some(node);
    }
    head
}

fn is_tautology(c: &Cond, wide: bool) -> bool {
    let mask = if wide { c.mask } else { c.mask & 0xffff_ffff };
    c.op == Op::MaskedEq && mask == 0
}

/// A condition on a 32-bit ABI: one node on the low word.
fn narrow_cond(c: &Cond, accept: Branch) -> Node {
    let (test, on_true) = match c.op {
        Op::Eq => (Test::Eq, true),
        Op::MaskedEq => (Test::MaskedEq, true),
        Op::Gt => (Test::Gt, true),
        Op::Ge => (Test::Ge, true),
        Op::Ne => (Test::Eq, false),
        Op::Lt => (Test::Ge, false),
        Op::Le => (Test::Gt, false),
    };
    let mut node = Node::new(c, false, test, c.mask as u32, c.datum as u32);
    if on_true {
        node.t = accept;
    } else {
        node.f = accept;
    }
    node
}

/// A condition on a 64-bit ABI: high word, then low word.
fn wide_cond(c: &Cond, accept: Branch) -> Node {
    let (mask_hi, mask_lo) = ((c.mask >> 32) as u32, c.mask as u32);
    let (datum_hi, datum_lo) = ((c.datum >> 32) as u32, c.datum as u32);
    let hi = |test| Node::new(c, true, test, mask_hi, datum_hi);
    let lo = |test| Node::new(c, false, test, mask_lo, datum_lo);
    match c.op {
        Op::Eq | Op::MaskedEq | Op::Ne => {
            let test = if c.op == Op::MaskedEq {
                Test::MaskedEq
            } else {
                Test::Eq
            };
            let (mut h, mut l) = (hi(test), lo(test));
            if c.op == Op::Ne {
                h.f = accept.clone();
                l.f = accept;
            } else {
                l.t = accept;
            }
            h.t = Branch::Level(vec![l]);
            h
        }
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            let lo_test = if matches!(c.op, Op::Gt | Op::Le) {
                Test::Gt
            } else {
                Test::Ge
            };
            let (mut above, mut equal, mut low) = (hi(Test::Gt), hi(Test::Eq), lo(lo_test));
            if matches!(c.op, Op::Gt | Op::Ge) {
                above.t = accept.clone();
                low.t = accept;
            } else {
                equal.f = accept.clone();
                low.f = accept;
            }
            equal.t = Branch::Level(vec![low]);
            above.f = Branch::Level(vec![equal]);
            above
        }
    }
}

/// Adds one rule (its chain, or `None` for "no conditions") for a syscall.
pub(crate) fn add_rule(
    existing: Option<SyscallRules>,
    chain: Option<Node>,
    action: u32,
) -> Result<SyscallRules, Conflict> {
    match (existing, chain) {
        (None, None) => Ok(SyscallRules::Always(action)),
        (None, Some(node)) => Ok(SyscallRules::Tree(vec![node])),
        (Some(SyscallRules::Always(old)), _) => Ok(SyscallRules::Always(old)),
        (Some(SyscallRules::Tree(_)), None) => Ok(SyscallRules::Always(action)),
        (Some(SyscallRules::Tree(mut level)), Some(node)) => {
            merge_into_level(&mut level, node)?;
            Ok(SyscallRules::Tree(level))
        }
    }
}

fn merge_into_level(level: &mut Vec<Node>, new: Node) -> Result<(), Conflict> {
    for i in 0..level.len() {
        if level[i].same_test(&new) {
            return merge_node(&mut level[i], new);
        }
        if level[i].sorts_after(&new) {
            level.insert(i, new);
            return Ok(());
        }
    }
    level.push(new);
    Ok(())
}

fn merge_node(x: &mut Node, n: Node) -> Result<(), Conflict> {
    // Leaf status is re-read after each side: replacing a subtree with an
    // action on the true side can turn `x` into a leaf.
    let n_leaf = n.is_leaf();
    let n_wins_tie = n.hi && n.full > x.full;
    let x_leaf = x.is_leaf();
    merge_action(&mut x.t, &n.t, (x_leaf, n_leaf), n_wins_tie)?;
    let x_leaf = x.is_leaf();
    merge_action(&mut x.f, &n.f, (x_leaf, n_leaf), false)?;
    if !merge_subtree(&mut x.t, n.t)? {
        return Ok(());
    }
    merge_subtree(&mut x.f, n.f).map(|_| ())
}

/// Reconciles the action on one side of two equal nodes.
fn merge_action(
    x: &mut Branch,
    n: &Branch,
    (x_leaf, n_leaf): (bool, bool),
    n_wins_tie: bool,
) -> Result<(), Conflict> {
    let Branch::Act(new) = *n else {
        return Ok(());
    };
    match x {
        Branch::Act(old) if *old == new => Ok(()),
        Branch::Act(old) => {
            if n_wins_tie {
                *old = new;
            }
            if x_leaf || n_leaf {
                Err(Conflict)
            } else {
                Ok(())
            }
        }
        Branch::Level(sub) if !all_actions_are(sub, new) => Err(Conflict),
        _ => {
            *x = Branch::Act(new);
            Ok(())
        }
    }
}

/// Merges the new node's subtree on one side; `false` means the existing
/// tree already ends here with an action (the shorter chain wins) and
/// nothing further of the new chain is merged.
fn merge_subtree(x: &mut Branch, n: Branch) -> Result<bool, Conflict> {
    let Branch::Level(new_level) = n else {
        return Ok(true);
    };
    match x {
        Branch::Level(level) => {
            for node in new_level {
                merge_into_level(level, node)?;
            }
            Ok(true)
        }
        Branch::Fall => {
            *x = Branch::Level(new_level);
            Ok(true)
        }
        Branch::Act(_) => Ok(false),
    }
}

fn all_actions_are(level: &[Node], action: u32) -> bool {
    level.iter().all(|node| {
        [&node.t, &node.f].into_iter().all(|b| match b {
            Branch::Fall => true,
            Branch::Act(a) => *a == action,
            Branch::Level(sub) => all_actions_are(sub, action),
        })
    })
}

/// Evaluates a tree directly (no BPF); used to cross-check code generation.
#[cfg(test)]
pub(crate) fn eval(level: &[Node], words: &dyn Fn(u8, bool) -> u32) -> Option<u32> {
    for node in level {
        let a = words(node.index, node.hi);
        let a = if node.test == Test::MaskedEq {
            a & node.mask
        } else {
            a
        };
        let hit = match node.test {
            Test::Eq | Test::MaskedEq => a == node.datum,
            Test::Gt => a > node.datum,
            Test::Ge => a >= node.datum,
        };
        let branch = if hit { &node.t } else { &node.f };
        let result = match branch {
            Branch::Fall => None,
            Branch::Act(v) => Some(*v),
            Branch::Level(sub) => eval(sub, words),
        };
        if result.is_some() {
            return result;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: u8, op: Op, datum: u64) -> Cond {
        Cond {
            index,
            op,
            mask: u64::MAX,
            datum,
        }
    }

    fn run(rules: &SyscallRules, args: [u64; 6], default: u32) -> u32 {
        match rules {
            SyscallRules::Always(a) => *a,
            SyscallRules::Tree(level) => {
                let words = |i: u8, hi: bool| {
                    let v = args[usize::from(i)];
                    if hi {
                        (v >> 32) as u32
                    } else {
                        v as u32
                    }
                };
                eval(level, &words).unwrap_or(default)
            }
        }
    }

    fn build(rules: &[(&[Cond], u32)], wide: bool) -> Result<SyscallRules, Conflict> {
        let mut acc = None;
        for (conds, action) in rules {
            acc = Some(add_rule(acc, chain(conds, wide, *action), *action)?);
        }
        acc.ok_or(Conflict)
    }

    /// Operator, datum, and (argument, matches?) probes.
    type Case = (Op, u64, &'static [(u64, bool)]);

    #[test]
    fn every_operator_on_64_bit_words() {
        let cases: [Case; 6] = [
            (Op::Eq, 5, &[(5, true), (4, false), (5 | 1 << 32, false)]),
            (Op::Ne, 5, &[(5, false), (6, true), (5 | 1 << 32, true)]),
            (
                Op::Gt,
                1 << 32,
                &[
                    (1 << 32, false),
                    ((1 << 32) + 1, true),
                    (u64::MAX, true),
                    (7, false),
                ],
            ),
            (Op::Ge, 1 << 32, &[(1 << 32, true), ((1 << 32) - 1, false)]),
            (
                Op::Lt,
                1 << 32,
                &[((1 << 32) - 1, true), (1 << 32, false), (0, true)],
            ),
            (Op::Le, 1 << 32, &[(1 << 32, true), ((1 << 32) + 1, false)]),
        ];
        for (op, datum, probes) in cases {
            let rules = build(&[(&[c(0, op, datum)], 7)], true).unwrap();
            for (arg, hit) in probes {
                let want = if *hit { 7 } else { 0 };
                assert_eq!(
                    run(&rules, [*arg, 0, 0, 0, 0, 0], 0),
                    want,
                    "{op:?} {datum} vs {arg}"
                );
            }
        }
    }

    #[test]
    fn narrow_abis_compare_only_the_low_word() {
        let rules = build(&[(&[c(0, Op::Eq, 3 | 1 << 32)], 7)], false).unwrap();
        assert_eq!(run(&rules, [3, 0, 0, 0, 0, 0], 0), 7);
    }

    #[test]
    fn equality_outranks_ranges_regardless_of_order() {
        let gt_first = build(&[(&[c(0, Op::Gt, 5)], 5), (&[c(0, Op::Eq, 7)], 6)], true).unwrap();
        let eq_first = build(&[(&[c(0, Op::Eq, 7)], 6), (&[c(0, Op::Gt, 5)], 5)], true).unwrap();
        for rules in [&gt_first, &eq_first] {
            assert_eq!(run(rules, [7, 0, 0, 0, 0, 0], 0), 6);
            assert_eq!(run(rules, [6, 0, 0, 0, 0, 0], 0), 5);
        }
    }

    #[test]
    fn unconditional_rule_dominates() {
        let r = build(&[(&[c(0, Op::Eq, 1)], 5), (&[], 6), (&[], 9)], true).unwrap();
        assert_eq!(r, SyscallRules::Always(6));
    }

    #[test]
    fn same_conditions_different_actions_conflict() {
        assert_eq!(
            build(&[(&[c(0, Op::Eq, 1)], 5), (&[c(0, Op::Eq, 1)], 6)], true),
            Err(Conflict)
        );
        let shorter_later = build(
            &[
                (&[c(0, Op::Eq, 1), c(1, Op::Eq, 2)], 5),
                (&[c(0, Op::Eq, 1)], 6),
            ],
            true,
        );
        assert_eq!(shorter_later, Err(Conflict));
        let shorter_first = build(
            &[
                (&[c(0, Op::Eq, 1)], 6),
                (&[c(0, Op::Eq, 1), c(1, Op::Eq, 2)], 5),
            ],
            true,
        )
        .unwrap();
        assert_eq!(run(&shorter_first, [1, 2, 0, 0, 0, 0], 0), 6);
    }

    #[test]
    fn zero_mask_is_no_condition() {
        let zero = Cond {
            index: 2,
            op: Op::MaskedEq,
            mask: 0,
            datum: 9,
        };
        assert_eq!(chain(&[zero], true, 1), None);
    }
}
