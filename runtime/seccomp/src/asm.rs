//! A tiny assembler with symbolic labels, so code generation never has to
//! count instructions.
//!
//! Classic BPF conditional jumps only reach 255 instructions forward. Big
//! profiles (Docker's default has ~350 syscalls per architecture) need
//! longer hops, so after layout every conditional jump whose target is too
//! far is pointed at a trampoline — an unconditional `ja`, whose offset is
//! 32 bits — inserted right behind it. Inserting trampolines moves code, so
//! layout repeats until nothing is out of reach; it only ever grows, so it
//! terminates.

use crate::bpf::{Insn, BPF_JA, BPF_JMP};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Label(usize);

#[derive(Clone, Copy, Debug)]
enum Item {
    Label(Label),
    Stmt(Insn),
    Cond {
        code: u16,
        k: u32,
        t: Label,
        f: Label,
    },
    Ja(Label),
}

#[derive(Default)]
pub(crate) struct Asm {
    items: Vec<Item>,
    labels: usize,
}

/// A jump target that lies behind its jump: a code generation bug, reported
/// rather than emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BackwardJump;

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub fn bind(&mut self, label: Label) {
        self.items.push(Item::Label(label));
    }

    pub fn stmt(&mut self, insn: Insn) {
        self.items.push(Item::Stmt(insn));
    }

    pub fn cond(&mut self, code: u16, k: u32, t: Label, f: Label) {
        self.items.push(Item::Cond { code, k, t, f });
    }

    /// Lays the program out, adding trampolines until every jump fits.
    pub fn finish(mut self) -> Result<Vec<Insn>, BackwardJump> {
        loop {
            let positions = self.positions();
            match self.first_far_jump(&positions)? {
                Some((at, side)) => self.add_trampoline(at, side),
                None => return self.emit(&positions),
            }
        }
    }

    /// Instruction index of every label.
    fn positions(&self) -> Vec<usize> {
        let mut positions = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for item in &self.items {
            match item {
                Item::Label(l) => positions[l.0] = pc,
                _ => pc += 1,
            }
        }
        positions
    }

    /// The first conditional jump (item index, true side?) out of reach.
    fn first_far_jump(&self, positions: &[usize]) -> Result<Option<(usize, bool)>, BackwardJump> {
        let mut pc = 0;
        for (at, item) in self.items.iter().enumerate() {
            match item {
                Item::Label(_) => continue,
                Item::Cond { t, f, .. } => {
                    if distance(pc, positions[t.0])? > usize::from(u8::MAX) {
                        return Ok(Some((at, true)));
                    }
                    if distance(pc, positions[f.0])? > usize::from(u8::MAX) {
                        return Ok(Some((at, false)));
                    }
                }
                _ => {}
            }
            pc += 1;
        }
        Ok(None)
    }

    fn add_trampoline(&mut self, at: usize, true_side: bool) {
        let hop = self.label();
        let Item::Cond { t, f, .. } = &mut self.items[at] else {
            return;
        };
        let target = if true_side {
            std::mem::replace(t, hop)
        } else {
            std::mem::replace(f, hop)
        };
        self.items
            .splice(at + 1..at + 1, [Item::Label(hop), Item::Ja(target)]);
    }

    fn emit(&self, positions: &[usize]) -> Result<Vec<Insn>, BackwardJump> {
        let mut out = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let pc = out.len();
            match *item {
                Item::Label(_) => continue,
                Item::Stmt(insn) => out.push(insn),
                Item::Cond { code, k, t, f } => {
                    let jt = distance(pc, positions[t.0])? as u8;
                    let jf = distance(pc, positions[f.0])? as u8;
                    out.push(Insn::jump(code, k, jt, jf));
                }
                Item::Ja(target) => {
                    let off = distance(pc, positions[target.0])? as u32;
                    out.push(Insn::stmt(BPF_JMP | BPF_JA, off));
                }
            }
        }
        Ok(out)
    }
}

/// Relative offset from the instruction at `pc` to `target`.
fn distance(pc: usize, target: usize) -> Result<usize, BackwardJump> {
    target.checked_sub(pc + 1).ok_or(BackwardJump)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{self, SeccompData, BPF_ABS, BPF_JEQ, BPF_K, BPF_LD, BPF_RET, BPF_W};

    #[test]
    fn far_targets_get_trampolines() {
        let mut asm = Asm::default();
        let (far, near) = (asm.label(), asm.label());
        asm.stmt(Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 0));
        asm.cond(BPF_JMP | BPF_JEQ | BPF_K, 1, far, near);
        asm.bind(near);
        for _ in 0..600 {
            asm.stmt(Insn::stmt(BPF_RET | BPF_K, 2));
        }
        asm.bind(far);
        asm.stmt(Insn::stmt(BPF_RET | BPF_K, 3));
        let prog = asm.finish().unwrap();
        assert_eq!(prog.len(), 604);
        assert_eq!(bpf::validate(&prog), Ok(()));
        let data = |nr| SeccompData {
            nr,
            ..Default::default()
        };
        assert_eq!(bpf::run(&prog, &data(1)), 3);
        assert_eq!(bpf::run(&prog, &data(0)), 2);
    }

    #[test]
    fn backward_jumps_are_refused() {
        let mut asm = Asm::default();
        let top = asm.label();
        asm.bind(top);
        asm.cond(BPF_JMP | BPF_JEQ | BPF_K, 1, top, top);
        assert_eq!(asm.finish(), Err(BackwardJump));
    }
}
